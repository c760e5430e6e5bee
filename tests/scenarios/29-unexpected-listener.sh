#!/bin/sh
# title: Backdoor listener on an unusual port
# technique: T1205 Traffic Signaling (listener waiting for the operator)
# source: https://attack.mitre.org/techniques/T1205/ ; Falco "Unexpected inbound connection source" (listener side)
# expect: Unexpected listening port
# peer: :::31338
# nonroot: yes
/bin/nc -l -p 31338 >/dev/null &
sleep 2
kill $!
