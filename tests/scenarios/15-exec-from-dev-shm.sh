#!/bin/sh
# title: Program run from /dev/shm
# technique: T1059 Command and Scripting Interpreter
# source: https://attack.mitre.org/techniques/T1059/ ; Falco "Execution from /dev/shm"
# expect: Execution from a temporary directory
# setup: mkdir -p /dev/shm && chmod 1777 /dev/shm
cp /bin/busybox /dev/shm/sleep
/dev/shm/sleep 0.1
