#!/bin/sh
# title: Benign: log rotation (append, rename, gzip, truncate and expire logs under /var/log)
# technique: -
# source: logrotate-style rotation inside an app container
# expect: nothing
# setup: mkdir -p /var/log/app
cd /var/log/app
for round in 1 2 3 4; do
  i=0
  while [ $i -lt 50 ]; do echo "$(date) GET /index.html 200" >> app.log; i=$((i + 1)); done
  [ -f app.log.2.gz ] && mv app.log.2.gz app.log.3.gz
  [ -f app.log.1.gz ] && mv app.log.1.gz app.log.2.gz
  cp app.log app.log.1 && : > app.log
  gzip -f app.log.1
  rm -f app.log.3.gz
  sleep 0.2
done
ls -l /var/log/app > /dev/null
