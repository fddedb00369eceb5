#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept install --backend iptables --mode tproxy --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
ip rule add fwmark 0x80/0x80 lookup 133
ip route add local default dev lo table 133
iptables -t mangle -N SHARDCAR_INBOUND
iptables -t mangle -N SHARDCAR_TPROXY
iptables -t mangle -N SHARDCAR_DIVERT
iptables -t mangle -A SHARDCAR_DIVERT -j MARK --set-xmark 0x80/0x80
iptables -t mangle -A SHARDCAR_DIVERT -j ACCEPT
iptables -t mangle -A SHARDCAR_TPROXY -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x80/0x80
iptables -t mangle -A SHARDCAR_INBOUND -i lo -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp -m socket --transparent -j SHARDCAR_DIVERT
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15000 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15001 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15006 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15020 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --syn -j SHARDCAR_TPROXY
iptables -t nat -N SHARDCAR_OUTBOUND
iptables -t nat -N SHARDCAR_REDIRECT
iptables -t nat -A SHARDCAR_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -t nat -A SHARDCAR_OUTBOUND -m mark --mark 0x539 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -d 127.0.0.0/8 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -p tcp -j SHARDCAR_REDIRECT
iptables -t mangle -A PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -A OUTPUT -p tcp -j SHARDCAR_OUTBOUND
