#!/bin/sh
# title: Login records deleted under /var/log
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# source: https://attack.mitre.org/techniques/T1070/002/ ; Falco "Clear Log Activities"
# expect: Log file cleared or deleted
# setup: mkdir -p /var/log && printf 'record' > /var/log/wtmp && printf 'record' > /var/log/btmp
rm -f /var/log/wtmp /var/log/btmp
