#!/bin/sh
# title: Root password removed (passwd -d)
# technique: T1098 Account Manipulation
# source: https://attack.mitre.org/techniques/T1098/ ; Falco "User mgmt binaries"
# expect: User management binary launched
# setup: echo 'root:*:19000:0:99999:7:::' > /etc/shadow && chmod 640 /etc/shadow
/bin/passwd -d root >/dev/null 2>&1
true
