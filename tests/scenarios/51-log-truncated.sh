#!/bin/sh
# title: System log emptied under /var/log
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# source: https://attack.mitre.org/techniques/T1070/002/ ; Falco "Clear Log Activities"
# expect: Log file cleared or deleted
# setup: mkdir -p /var/log && printf 'Accepted password for root from 198.51.100.1\n' > /var/log/auth.log
: > /var/log/auth.log
