#!/bin/sh
# title: SSH client connecting to a non-standard port (tunnel out)
# technique: T1571 Non-Standard Port
# source: https://attack.mitre.org/techniques/T1571/ ; Falco "Disallowed SSH Connection Non Standard Port"
# expect: SSH connection to a non-standard port
# needs: python
# peer: 198.51.100.1:8005
# setup: ln -s "$(command -v python3)" /usr/local/bin/ssh
# busybox has no ssh client: the image's `ssh` is python3 under that name (the kernel names the
# process after the file run, as for a real client), connecting the way `ssh -p 8005` would.
/usr/local/bin/ssh -c "import socket; s = socket.create_connection(('198.51.100.1', 8005)); s.sendall(b'SSH-2.0-OpenSSH_9.6\r\n'); s.recv(64)"
true
