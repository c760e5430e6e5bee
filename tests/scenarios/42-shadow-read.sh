#!/bin/sh
# title: /etc/shadow read
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# source: https://attack.mitre.org/techniques/T1003/008/ ; Falco "Read sensitive file untrusted"
# expect: Sensitive credential file read
# setup: echo 'root:$6$salt$hash:19000:0:99999:7:::' > /etc/shadow && chmod 640 /etc/shadow
cat /etc/shadow > /dev/null
