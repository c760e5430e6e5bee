#!/bin/sh
# title: Package manager run in a running container (dpkg)
# technique: T1072 Software Deployment Tools
# source: https://attack.mitre.org/techniques/T1072/ ; Falco "Launch Package Management Process in Container"
# expect: Package manager launched at runtime
/bin/dpkg -l >/dev/null 2>&1
true
