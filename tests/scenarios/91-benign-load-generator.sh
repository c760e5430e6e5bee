#!/bin/sh
# title: Benign: load generator (about 300 requests from 4 parallel loops to the web server's container)
# technique: -
# source: a load test or a sidecar polling the app over localhost
# expect: nothing
n=0
until /bin/wget -q -O /dev/null http://127.0.0.1:8080/health; do
  n=$((n + 1)); [ $n -gt 50 ] && exit 1; sleep 0.1
done
for loop in 1 2 3 4; do
  (i=0; while [ $i -lt 75 ]; do /bin/wget -q -O /dev/null http://127.0.0.1:8080/; i=$((i + 1)); done) &
done
wait
