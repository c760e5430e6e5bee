#!/bin/sh
# title: Known crypto miner binary run (xmrig)
# technique: T1496 Resource Hijacking
# source: https://attack.mitre.org/techniques/T1496/ ; Falco "Known Cryptominer Process Executed"
# expect: Crypto miner launched
# setup: printf '#!/bin/sh\nexit 0\n' > /usr/local/bin/xmrig && chmod 755 /usr/local/bin/xmrig
xmrig --url pool.example:443 --donate-level 1
