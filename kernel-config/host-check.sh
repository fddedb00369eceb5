#!/bin/sh
# Prints how this host differs from what Shardcar expects. Changes nothing; always exits 0.
#   sysctls:  kernel-config/sysctl.d/60-shardcar.conf (single numbers are minimums)
#   tools:    iptables, ip6tables, nft, ip (for `shardcar intercept`)
#   kernel:   netfilter targets/matches for REDIRECT and TPROXY, io_uring
#   ebpf:     kernel options, bpffs and cgroup v2 mounts for `intercept --mode ebpf`
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

echo "ebpf (intercept --mode ebpf):"
if [ -n "$kconfig" ]; then
  for c in BPF_SYSCALL BPF_JIT CGROUP_BPF SOCK_CGROUP_DATA BPF_STREAM_PARSER NET_SOCK_MSG; do
    printf '%s\n' "$kconfig" | grep -Eq "^CONFIG_$c=y" || note "CONFIG_$c" "not enabled: eBPF interception unavailable"
  done
fi
grep -qs ' /sys/fs/bpf bpf ' /proc/mounts ||
  note /sys/fs/bpf "bpffs not mounted (mount -t bpf bpf /sys/fs/bpf); or pass --bpffs DIR"
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [ -z "$cg2" ]; then
  note cgroup2 "not mounted: eBPF interception attaches to a cgroup v2 directory"
elif [ "$cg2" != /sys/fs/cgroup ]; then
  echo "  (cgroup v2 is at $cg2: hybrid hierarchy; the default --cgroup is that directory)"
fi
[ "$(cat /proc/sys/kernel/unprivileged_bpf_disabled 2>/dev/null)" = 0 ] &&
  note kernel.unprivileged_bpf_disabled "is 0: unprivileged users may load BPF (1 or 2 is safer)"
command -v bpftool >/dev/null 2>&1 || note bpftool "not installed (apt-get install bpftool): needed by the eBPF tests"

echo "limits:"
nofile=$(ulimit -Hn)
[ "$nofile" != unlimited ] && [ "$nofile" -lt 1048576 ] && note "ulimit -Hn" "is $nofile; the systemd unit sets LimitNOFILE=1048576"

echo "$diffs difference(s); nothing was changed."
exit 0
