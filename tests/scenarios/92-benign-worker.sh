#!/bin/sh
# title: Benign: worker running short jobs (busybox utilities, job shells, scratch files in /tmp)
# technique: -
# source: a queue worker or batch job container
# expect: nothing
i=0
while [ $i -lt 40 ]; do
  /bin/sh -c "date +%s%N | md5sum | cut -c1-8 > /tmp/job.$i"
  sort /tmp/job.$i | uniq | wc -l > /dev/null
  gzip -c /etc/passwd | gunzip | tr a-z A-Z | awk -F: '{ print $1 }' > /dev/null
  seq 1 3 | xargs -n1 /bin/sh -c 'expr $0 \* 2 > /dev/null'
  rm -f /tmp/job.$i
  i=$((i + 1))
done
