#!/bin/sh
# title: GLIBC_TUNABLES privilege escalation attempt (CVE-2023-4911)
# technique: T1068 Exploitation for Privilege Escalation
# source: https://attack.mitre.org/techniques/T1068/ ; Falco "Potential Local Privilege Escalation via Environment Variables Misuse"
# expect: Privilege escalation through GLIBC_TUNABLES
GLIBC_TUNABLES=glibc.tune.hwcaps=AAAAAAAA sleep 0.1
