#!/bin/sh
# title: Benign: shell-form entrypoint app (sh -c "cd /app && python3 app.py") calling an external API
# technique: -
# source: Docker's shell form of CMD and ENTRYPOINT (`CMD python app.py` runs `/bin/sh -c "python app.py"`)
# expect: nothing
# needs: python
# entrypoint: shell-form
# peer: 198.51.100.1:8004
# setup: mkdir -p /app && printf 'import socket, time\nfor i in range(3):\n    s = socket.create_connection(("198.51.100.1", 8004))\n    s.sendall(b"GET /v1/orders HTTP/1.1\\r\\nHost: api.example\\r\\n\\r\\n")\n    time.sleep(1)\n    s.close()\n' > /app/app.py
cd /app && python3 app.py
