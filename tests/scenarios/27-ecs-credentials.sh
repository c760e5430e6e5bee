#!/bin/sh
# title: Task role credentials fetched from the ECS endpoint (169.254.170.2) by a shell tool
# technique: T1552.005 Unsecured Credentials: Cloud Instance Metadata API
# source: https://attack.mitre.org/techniques/T1552/005/ ; Falco "Contact cloud metadata service from container"
# expect: Connection to the ECS credentials endpoint by an unexpected process | Unattributed connection to the ECS credentials endpoint | Cloud credentials endpoint named on a command line
# peer: 169.254.170.2:80
/bin/wget -q -O- "http://169.254.170.2${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-/v2/credentials/3f1a}" >/dev/null
true
