#!/bin/sh
# title: Hidden file dropped in /tmp
# technique: T1564.001 Hide Artifacts: Hidden Files and Directories
# source: https://attack.mitre.org/techniques/T1564/001/ ; Falco "Create Hidden Files or Directories"
# expect: Hidden file created in a temporary directory
# nonroot: yes
echo 'pool=198.51.100.1:3333' > /tmp/.X11-cache
