#!/bin/sh
# title: Benign: worker with a loopback cache (a cache server on 127.0.0.1:6379; python and nc clients connect to it repeatedly)
# technique: -
# source: a worker talking to a local cache or sidecar (redis, memcached) over the task's loopback
# expect: nothing
# needs: python
python3 -c "
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 6379))
s.listen(16)
s.settimeout(10)
try:
    while True:
        c, _ = s.accept()
        c.settimeout(2)
        try:
            while True:
                d = c.recv(1024)
                if not d:
                    break
                c.sendall(b'+OK\r\n')
        except OSError:
            pass
        c.close()
except OSError:
    pass
" &
cache=$!
n=0
until echo PING | /bin/nc -w 1 127.0.0.1 6379 > /dev/null 2>&1; do
  n=$((n + 1)); [ $n -gt 50 ] && exit 1; sleep 0.1
done
# The worker: jobs read and written through the cache, each connection held a moment.
python3 -c "
import socket, time
for i in range(10):
    c = socket.create_connection(('127.0.0.1', 6379))
    c.sendall(b'GET job:%d\r\n' % i)
    c.recv(64)
    time.sleep(0.2)
    c.close()
"
for i in 1 2 3; do
  echo "SET job:$i done" | /bin/nc -w 1 127.0.0.1 6379 > /dev/null
done
kill $cache
true
