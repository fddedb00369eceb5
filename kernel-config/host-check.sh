#!/bin/sh
# Prints how this host differs from what Shardcar expects. Changes nothing; always exits 0.
#   sysctls:  kernel-config/sysctl.d/60-shardcar.conf (single numbers are minimums)
#   tools:    iptables, ip6tables, nft, ip (for `shardcar intercept`)
#   kernel:   netfilter targets/matches for REDIRECT and TPROXY, io_uring
# Usage: sh kernel-config/host-check.sh [path/to/60-shardcar.conf]
conf=${1:-$(dirname "$0")/sysctl.d/60-shardcar.conf}
diffs=0
# at_least "4096 131072 33554432" "4096 131072 16777216": each field of $1 >= the same field of $2.
at_least() {
  set -- $1 -- $2
  n=0; for x in "$@"; do [ "$x" = -- ] && break; n=$((n + 1)); done
  i=0; while [ $i -lt "$n" ]; do
    eval "h=\${$((i + 1))}; w=\${$((i + n + 2))}"
    [ "$h" -ge "$w" ] 2>/dev/null || return 1
    i=$((i + 1))
  done
}
note() { printf '  %-40s %s\n' "$1" "$2"; diffs=$((diffs + 1)); }

echo "sysctl (from $conf):"
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  key=$(printf '%s' "${line%%=*}" | tr -d ' ')
  want=$(printf '%s' "${line#*=}" | sed 's/^ *//; s/ *$//')
  have=$(sysctl -n "$key" 2>/dev/null | tr -s ' \t' '  ')
  if [ -z "$have" ]; then
    note "$key" "missing on this host (want $want)"
  elif [ "$have" = "$want" ]; then
    :
  elif [ "$key" != net.ipv4.ip_local_port_range ] && at_least "$have" "$want"; then
    : # every number at or above its minimum is fine
  else
    note "$key" "is '$have', want '$want'"
  fi
done < "$conf"

echo "tools:"
for t in iptables ip6tables iptables-save nft ip; do
  command -v "$t" >/dev/null 2>&1 || note "$t" "not installed (apt-get install iptables nftables iproute2)"
done

echo "kernel:"
[ -e /proc/sys/kernel/io_uring_disabled ] && [ "$(cat /proc/sys/kernel/io_uring_disabled)" != 0 ] &&
  note kernel.io_uring_disabled "is $(cat /proc/sys/kernel/io_uring_disabled): shards fall back to epoll"
kconfig=""
if [ -r /proc/config.gz ]; then kconfig=$(zcat /proc/config.gz)
elif [ -r "/boot/config-$(uname -r)" ]; then kconfig=$(cat "/boot/config-$(uname -r)")
fi
if [ -z "$kconfig" ]; then
  echo "  (no kernel config readable; the namespace tests in \`make test\` prove REDIRECT/TPROXY support)"
else
  for c in NF_CONNTRACK NF_NAT NETFILTER_XT_TARGET_REDIRECT NETFILTER_XT_TARGET_TPROXY NETFILTER_XT_MATCH_SOCKET \
           NETFILTER_XT_MATCH_OWNER NFT_TPROXY NFT_SOCKET IP_MULTIPLE_TABLES IO_URING; do
    printf '%s\n' "$kconfig" | grep -Eq "^CONFIG_$c=(y|m)" || note "CONFIG_$c" "not enabled in this kernel"
  done
fi

echo "limits:"
nofile=$(ulimit -Hn)
[ "$nofile" != unlimited ] && [ "$nofile" -lt 1048576 ] && note "ulimit -Hn" "is $nofile; the systemd unit sets LimitNOFILE=1048576"

echo "$diffs difference(s); nothing was changed."
exit 0
