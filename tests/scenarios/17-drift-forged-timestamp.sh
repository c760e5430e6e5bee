#!/bin/sh
# title: Drift: a binary written after start, timestamp forged, run from an image directory
# technique: T1105 Ingress Tool Transfer
# source: https://attack.mitre.org/techniques/T1105/ ; Falco "Drop and execute new binary in container"
# expect: Binary created after the container started
# gap: the tracer does not judge drift (see docs/coverage.md, Known gaps)
mkdir -p /opt/app/bin
cp /bin/busybox /opt/app/bin/sleep
touch -d '2001-01-01 00:00:00' /opt/app/bin/sleep
/opt/app/bin/sleep 0.1
