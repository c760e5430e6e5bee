#!/bin/sh
# title: Setuid root shell left behind
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# source: https://attack.mitre.org/techniques/T1548/001/ ; Falco "Set Setuid or Setgid bit"
# expect: Setuid or setgid bit set
cp /bin/busybox /var/tmp/rootsh
chmod 4755 /var/tmp/rootsh
