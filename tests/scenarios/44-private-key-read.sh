#!/bin/sh
# title: SSH private key read
# technique: T1552.004 Unsecured Credentials: Private Keys
# source: https://attack.mitre.org/techniques/T1552/004/ ; Falco "Read ssh information"
# expect: Sensitive credential file read
# setup: mkdir -p "$HOME/.ssh" && echo '-----BEGIN OPENSSH PRIVATE KEY-----' > "$HOME/.ssh/id_ed25519" && chmod 600 "$HOME/.ssh/id_ed25519"
# nonroot: yes
base64 "$HOME/.ssh/id_ed25519" > /dev/null
