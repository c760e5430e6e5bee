#!/bin/sh
# title: Fileless execution from a memfd (memfd_create + exec)
# technique: T1620 Reflective Code Loading
# source: https://attack.mitre.org/techniques/T1620/ ; Falco "Fileless execution via memfd_create"
# expect: Fileless execution
# needs: python
python3 -c "import os; fd = os.memfd_create('payload'); os.write(fd, open('/bin/busybox', 'rb').read()); os.execv(f'/proc/self/fd/{fd}', ['sleep', '0.2'])"
