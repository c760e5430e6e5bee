#!/bin/sh
# title: Renamed miner found by its stratum URL on the command line
# technique: T1496 Resource Hijacking
# source: https://attack.mitre.org/techniques/T1496/ ; Falco "Detect crypto miners using the Stratum protocol"
# expect: Crypto miner launched
# setup: printf '#!/bin/sh\nexit 0\n' > /usr/local/bin/kworkerd && chmod 755 /usr/local/bin/kworkerd
kworkerd -o stratum+tcp://pool.example:3333 -u 4AdUnd -p x
