#!/bin/sh
# title: Sudo heap overflow exploit attempt (CVE-2021-3156, Baron Samedit)
# technique: T1068 Exploitation for Privilege Escalation
# source: https://attack.mitre.org/techniques/T1068/ ; Falco "Sudo Potential Privilege Escalation"
# expect: Sudo heap overflow exploit attempt (CVE-2021-3156)
# setup: ln -s /bin/busybox /usr/bin/sudoedit
# The image's sudoedit is busybox under that name: only the exploit's command line matters.
/usr/bin/sudoedit -s '\' > /dev/null 2>&1
true
