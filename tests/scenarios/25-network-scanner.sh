#!/bin/sh
# title: Network scanner run (nmap)
# technique: T1046 Network Service Discovery
# source: https://attack.mitre.org/techniques/T1046/ ; Falco "Launch Suspicious Network Tool in Container"
# expect: Network scanner launched
# setup: printf '#!/bin/sh\nexit 0\n' > /usr/local/bin/nmap && chmod 755 /usr/local/bin/nmap
nmap -sT -p 1-1024 198.51.100.0/24
