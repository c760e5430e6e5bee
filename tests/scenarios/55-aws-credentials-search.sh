#!/bin/sh
# title: Search for AWS credential files
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# source: https://attack.mitre.org/techniques/T1552/001/ ; Falco "Find AWS Credentials"
# expect: Search for private keys or cloud credentials
/bin/find / -xdev -path '*.aws/credentials' > /dev/null 2>&1
true
