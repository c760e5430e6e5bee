#!/bin/sh
# title: Shell history emptied
# technique: T1070.003 Indicator Removal: Clear Command History
# source: https://attack.mitre.org/techniques/T1070/003/ ; Falco "Clear Log Activities"
# expect: Shell history deleted or truncated
# setup: printf 'ls\ncat /etc/passwd\n' > /root/.ash_history && chmod 600 /root/.ash_history
: > /root/.ash_history
