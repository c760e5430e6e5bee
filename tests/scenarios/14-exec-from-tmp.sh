#!/bin/sh
# title: Program run from /tmp
# technique: T1059 Command and Scripting Interpreter
# source: https://attack.mitre.org/techniques/T1059/ ; Falco "Drop and execute new binary in container"
# expect: Execution from a temporary directory
# nonroot: yes
cp /bin/busybox /tmp/sleep
/tmp/sleep 1
