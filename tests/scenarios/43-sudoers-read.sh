#!/bin/sh
# title: sudoers read (privilege discovery)
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# source: https://attack.mitre.org/techniques/T1548/003/ ; Falco "Read sensitive file untrusted"
# expect: Sensitive credential file read
# setup: echo 'root ALL=(ALL) ALL' > /etc/sudoers && chmod 440 /etc/sudoers
grep -v '^#' /etc/sudoers > /dev/null
