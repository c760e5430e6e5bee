#!/bin/sh
# title: Binary deleted after start re-executes itself (/proc/self/exe)
# technique: T1070.004 Indicator Removal: File Deletion
# source: https://attack.mitre.org/techniques/T1070/004/ ; Falco "Fileless execution via memfd_create" (same evasion, deleted file)
# expect: Fileless execution
# nonroot: yes
cp /bin/busybox "$HOME/sh"
ln -s /proc/self/exe "$HOME/sleep"
"$HOME/sh" -c 'rm -f "$HOME/sh"; exec "$HOME/sleep" 1'
