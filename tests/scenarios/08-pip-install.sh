#!/bin/sh
# title: Python package installed at runtime (python3 -m pip)
# technique: T1072 Software Deployment Tools
# source: https://attack.mitre.org/techniques/T1072/ ; Falco "Launch Package Management Process in Container"
# expect: Package manager launched at runtime
# needs: python
python3 -m pip install --quiet requests-toolbelt 2>/dev/null
true
