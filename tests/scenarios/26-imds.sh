#!/bin/sh
# title: Instance metadata service queried for credentials (169.254.169.254)
# technique: T1552.005 Unsecured Credentials: Cloud Instance Metadata API
# source: https://attack.mitre.org/techniques/T1552/005/ ; Falco "Contact EC2 Instance Metadata Service From Container"
# expect: Connection to the EC2 instance metadata service | Cloud credentials endpoint named on a command line
# peer: 169.254.169.254:80
/bin/wget -q -O- http://169.254.169.254/latest/meta-data/iam/security-credentials/ >/dev/null
true
