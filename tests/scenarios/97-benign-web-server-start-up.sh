#!/bin/sh
# title: Benign: web service binding its ports at start-up (0.0.0.0:8443 and 0.0.0.0:9443, shell-form entrypoint)
# technique: -
# source: a service's own listeners are not "unexpected": opened by the container's entrypoint tree during its first 60 s (ts_net_startup_listener)
# expect: nothing
# needs: python
# entrypoint: shell-form
# setup: mkdir -p /app && printf 'import socket, time\nsocks = []\nfor port in (8443, 9443):\n    s = socket.socket()\n    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n    s.bind(("0.0.0.0", port))\n    s.listen(16)\n    socks.append(s)\ntime.sleep(4)\n' > /app/app.py
cd /app && python3 app.py
