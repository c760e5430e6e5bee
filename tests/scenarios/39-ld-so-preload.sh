#!/bin/sh
# title: /etc/ld.so.preload written (system-wide library injection)
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# source: https://attack.mitre.org/techniques/T1574/006/ ; Falco "Write below etc"
# expect: Shell configuration modified
# expect: Write below etc
echo /usr/local/lib/libprocesshider.so > /etc/ld.so.preload
