#!/bin/sh
# title: AWS credentials file read
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# source: https://attack.mitre.org/techniques/T1552/001/ ; Falco "Find AWS Credentials"
# expect: Sensitive credential file read
# setup: mkdir -p "$HOME/.aws" && printf '[default]\naws_access_key_id=AKIAEXAMPLE\n' > "$HOME/.aws/credentials"
# nonroot: yes
cat "$HOME/.aws/credentials" > /dev/null
