#!/bin/sh
# title: SSH private key read
# technique: T1552.004 Unsecured Credentials: Private Keys
# source: https://attack.mitre.org/techniques/T1552/004/ ; Falco "Read ssh information"
# expect: Sensitive credential file read
# setup: mkdir -p /root/.ssh && echo '-----BEGIN OPENSSH PRIVATE KEY-----' > /root/.ssh/id_ed25519 && chmod 600 /root/.ssh/id_ed25519
base64 /root/.ssh/id_ed25519 > /dev/null
