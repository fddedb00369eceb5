#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept uninstall --backend nft --mode tproxy --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
nft delete table ip shardcar
ip rule del fwmark 0x80/0x80 lookup 133
ip route del local default dev lo table 133
