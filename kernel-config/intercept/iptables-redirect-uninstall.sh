#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept uninstall --backend iptables --mode redirect --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
iptables -t nat -D PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -D OUTPUT -p tcp -j SHARDCAR_OUTBOUND
iptables -t nat -F SHARDCAR_INBOUND
iptables -t nat -F SHARDCAR_IN_REDIRECT
iptables -t nat -F SHARDCAR_OUTBOUND
iptables -t nat -F SHARDCAR_REDIRECT
iptables -t nat -X SHARDCAR_INBOUND
iptables -t nat -X SHARDCAR_IN_REDIRECT
iptables -t nat -X SHARDCAR_OUTBOUND
iptables -t nat -X SHARDCAR_REDIRECT
