#!/bin/sh
# title: Package database changed at runtime
# technique: T1554 Compromise Host Software Binary
# source: https://attack.mitre.org/techniques/T1554/ ; Falco "Write below rpm database"
# expect: Package database modified at runtime
# setup: mkdir -p /var/lib/dpkg && echo 'Package: base-files' > /var/lib/dpkg/status
printf '\nPackage: ncat\nStatus: install ok installed\n' >> /var/lib/dpkg/status
