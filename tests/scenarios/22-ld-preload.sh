#!/bin/sh
# title: Library injected with LD_PRELOAD
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# source: https://attack.mitre.org/techniques/T1574/006/ ; Falco "Potential Local Privilege Escalation via Environment Variables Misuse"
# expect: Dynamic linker hijacking variable set
# nonroot: yes
LD_PRELOAD=/tmp/libhook.so sleep 1
