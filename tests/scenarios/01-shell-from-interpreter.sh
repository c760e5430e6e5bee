#!/bin/sh
# title: Shell spawned by an application runtime (code execution in a Python app)
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Run shell untrusted"
# expect: Shell spawned by a non-shell program
# needs: python
python3 -c "import os; os.system('id; uname -a')"
