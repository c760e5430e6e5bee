#!/bin/sh
# title: Process run under another process's ptrace (injection/debugging)
# technique: T1055.008 Process Injection: Ptrace System Calls
# source: https://attack.mitre.org/techniques/T1055/008/ ; Falco "PTRACE attached to process"
# expect: Process traced by another process
# trace: prevented
# programs: selftracer sleeper
selftracer 300 ptrace-scenario
