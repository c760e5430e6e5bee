#!/bin/sh
# title: Cluster client run in a container (kubectl looking for secrets)
# technique: T1613 Container and Resource Discovery
# source: https://attack.mitre.org/techniques/T1613/ ; Falco "Kubernetes Client Tool Launched in Container"
# expect: Container orchestration client launched
# setup: ln -s /bin/busybox /usr/local/bin/kubectl
# The image's kubectl is busybox under that name: only the launch matters, not what it does.
/usr/local/bin/kubectl get secrets --all-namespaces > /dev/null 2>&1
true
