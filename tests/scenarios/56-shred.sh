#!/bin/sh
# title: Data destroyed with shred
# technique: T1485 Data Destruction
# source: https://attack.mitre.org/techniques/T1485/ ; Falco "Remove Bulk Data from Disk"
# expect: Data destruction tool launched
# setup: mkdir -p /srv/data && dd if=/dev/urandom of=/srv/data/orders.db bs=1k count=64 2>/dev/null
/bin/shred -u /srv/data/orders.db
