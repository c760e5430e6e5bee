#!/bin/sh
# title: Raw socket opened by a script (sniffing, crafted packets)
# technique: T1040 Network Sniffing
# source: https://attack.mitre.org/techniques/T1040/ ; Falco "Packet socket created in container"
# expect: Raw or packet socket opened
# needs: python
python3 -c "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP); time.sleep(1.5)"
