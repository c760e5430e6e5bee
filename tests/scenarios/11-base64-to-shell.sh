#!/bin/sh
# title: Obfuscated command decoded and piped to a shell (base64 -d | sh)
# technique: T1140 Deobfuscate/Decode Files or Information
# source: https://attack.mitre.org/techniques/T1140/ ; Falco "Decoding Payload in Container"
# expect: Decoded payload piped to a shell
# "id; sleep 0.2"
/bin/sh -c "echo aWQ7IHNsZWVwIDAuMgo= | /bin/base64 -d | /bin/sh"
