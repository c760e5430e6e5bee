#!/bin/sh
# title: Shell history deleted
# technique: T1070.003 Indicator Removal: Clear Command History
# source: https://attack.mitre.org/techniques/T1070/003/ ; Falco "Delete or rename shell history"
# expect: Shell history deleted or truncated
# setup: printf 'id\n' > /root/.bash_history && chmod 600 /root/.bash_history
rm -f /root/.bash_history
