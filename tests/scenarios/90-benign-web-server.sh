#!/bin/sh
# title: Benign: web server (busybox httpd on 8080) serving a load generator
# technique: -
# source: the common shape of a Fargate web service
# expect: nothing
# setup: mkdir -p /www && echo ok > /www/health && echo '<h1>hello</h1>' > /www/index.html
timeout 10 /bin/httpd -f -p 8080 -h /www
true
