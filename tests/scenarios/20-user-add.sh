#!/bin/sh
# title: Account created (useradd)
# technique: T1136.001 Create Account: Local Account
# source: https://attack.mitre.org/techniques/T1136/001/ ; Falco "User mgmt binaries"
# expect: User management binary launched
# setup: printf '#!/bin/sh\nexit 0\n' > /usr/sbin/useradd && chmod 755 /usr/sbin/useradd
useradd -o -u 0 -g 0 -M -d /root -s /bin/sh toor
