#!/bin/sh
# title: Interactive shell with a terminal (pty upgrade of a foothold)
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Terminal shell in container"
# expect: Shell with a terminal in a container
# needs: python
python3 -c '
import os, pty
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-i", "-c", "id; sleep 0.3"])
while True:
    try:
        if not os.read(fd, 1024):
            break
    except OSError:
        break
os.waitpid(pid, 0)
'
