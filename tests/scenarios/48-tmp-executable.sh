#!/bin/sh
# title: Executable dropped in /tmp (not run)
# technique: T1105 Ingress Tool Transfer
# source: https://attack.mitre.org/techniques/T1105/ ; Falco "Container Drift Detected (chmod)"
# expect: Executable dropped in a temporary directory
printf '#!/bin/sh\necho stage2\n' > /tmp/stage2
chmod +x /tmp/stage2
