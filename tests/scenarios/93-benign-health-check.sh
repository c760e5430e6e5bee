#!/bin/sh
# title: Benign: package-less container health checks (sh -c 'wget -q -O- http://localhost/health || exit 1')
# technique: -
# source: ECS container health checks (CMD-SHELL) in images without curl
# expect: nothing
i=0
while [ $i -lt 20 ]; do
  /bin/sh -c '/bin/wget -q -O- http://localhost:8080/health || exit 1' > /dev/null 2>&1
  /bin/sh -c '/bin/wget -q --spider http://127.0.0.1:8080/health || exit 1' > /dev/null 2>&1
  /bin/sh -c 'test -d /proc/1 || exit 1'
  sleep 0.2
  i=$((i + 1))
done
true
