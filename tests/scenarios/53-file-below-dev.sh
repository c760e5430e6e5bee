#!/bin/sh
# title: Payload hidden in a file created below /dev
# technique: T1564 Hide Artifacts
# source: https://attack.mitre.org/techniques/T1564/ ; Falco "Create files below dev"
# expect: File created below /dev
printf '#!/bin/sh\nid\n' > /dev/kcore-cache
