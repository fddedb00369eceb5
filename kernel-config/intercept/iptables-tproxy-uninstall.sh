#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept uninstall --backend iptables --mode tproxy --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
iptables -t mangle -D PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -D OUTPUT -p tcp -j SHARDCAR_OUTBOUND
iptables -t mangle -F SHARDCAR_INBOUND
iptables -t mangle -F SHARDCAR_TPROXY
iptables -t mangle -F SHARDCAR_DIVERT
iptables -t nat -F SHARDCAR_OUTBOUND
iptables -t nat -F SHARDCAR_REDIRECT
iptables -t mangle -X SHARDCAR_INBOUND
iptables -t mangle -X SHARDCAR_TPROXY
iptables -t mangle -X SHARDCAR_DIVERT
iptables -t nat -X SHARDCAR_OUTBOUND
iptables -t nat -X SHARDCAR_REDIRECT
ip rule del fwmark 0x80/0x80 lookup 133
ip route del local default dev lo table 133
