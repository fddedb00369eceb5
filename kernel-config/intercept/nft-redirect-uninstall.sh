#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept uninstall --backend nft --mode redirect --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
nft delete table ip shardcar
