#!/bin/sh
# title: Binary deleted after start re-executes itself (/proc/self/exe)
# technique: T1070.004 Indicator Removal: File Deletion
# source: https://attack.mitre.org/techniques/T1070/004/ ; Falco "Fileless execution via memfd_create" (same evasion, deleted file)
# expect: Fileless execution
cp /bin/busybox /root/sh
ln -s /proc/self/exe /root/sleep
/root/sh -c 'rm -f /root/sh; exec /root/sleep 0.2'
