#!/bin/sh
# title: SSH key added to authorized_keys
# technique: T1098.004 Account Manipulation: SSH Authorized Keys
# source: https://attack.mitre.org/techniques/T1098/004/ ; Falco "Adding ssh keys to authorized_keys"
# expect: SSH authorized_keys modified
# nonroot: yes
mkdir -p "$HOME/.ssh"
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample attacker@c2' >> "$HOME/.ssh/authorized_keys"
