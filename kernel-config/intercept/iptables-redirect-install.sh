#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept install --backend iptables --mode redirect --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
iptables -t nat -N SHARDCAR_INBOUND
iptables -t nat -N SHARDCAR_IN_REDIRECT
iptables -t nat -A SHARDCAR_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
iptables -t nat -A SHARDCAR_INBOUND -i lo -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15000 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15001 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15006 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15020 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp -j SHARDCAR_IN_REDIRECT
iptables -t nat -N SHARDCAR_OUTBOUND
iptables -t nat -N SHARDCAR_REDIRECT
iptables -t nat -A SHARDCAR_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -t nat -A SHARDCAR_OUTBOUND -m mark --mark 0x539 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -d 127.0.0.0/8 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -p tcp -j SHARDCAR_REDIRECT
iptables -t nat -A PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -A OUTPUT -p tcp -j SHARDCAR_OUTBOUND
