#!/bin/sh
# Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.
# Equivalent: shardcar intercept install --backend nft --mode tproxy --mark 0x539
# (the subcommand also removes a previous install first and removes only what is present).
set -e
ip rule add fwmark 0x80/0x80 lookup 133
ip route add local default dev lo table 133
nft -f - <<'EOF'
table ip shardcar {
	chain SHARDCAR_OUTBOUND {
		meta mark 0x539 return
		ip daddr 127.0.0.0/8 return
		meta l4proto tcp redirect to :15001
	}
	chain SHARDCAR_DIVERT {
		meta mark set meta mark | 0x80 accept
	}
	chain SHARDCAR_INBOUND {
		iifname "lo" return
		meta l4proto tcp socket transparent 1 jump SHARDCAR_DIVERT
		tcp dport 15000 return
		tcp dport 15001 return
		tcp dport 15006 return
		tcp dport 15020 return
		meta l4proto tcp tcp flags & (fin | syn | rst | ack) == syn tproxy to :15006 meta mark set meta mark | 0x80 accept
	}
	chain mangle_prerouting {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp jump SHARDCAR_INBOUND
	}
	chain nat_output {
		type nat hook output priority -100; policy accept;
		meta l4proto tcp jump SHARDCAR_OUTBOUND
	}
}
EOF
