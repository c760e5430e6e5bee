#!/bin/sh
# title: Search of the file system for private keys
# technique: T1552.004 Unsecured Credentials: Private Keys
# source: https://attack.mitre.org/techniques/T1552/004/ ; Falco "Search Private Keys or Passwords"
# expect: Search for private keys or cloud credentials
/bin/grep -rl "BEGIN OPENSSH PRIVATE" /root /home > /dev/null
/bin/find / -xdev -name id_rsa > /dev/null 2>&1
true
