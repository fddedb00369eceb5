#!/usr/bin/env bash
# New mTLS handshakes per second per core: Shardcar vs HAProxy, interleaved repetitions.
#
# Usage: bench-harness/handshakes.sh [BIN_DIR] [REPS] [SECONDS]   (default target/release 5 5)
# Both proxies run one thread pinned to CPU 0 (taskset -c 0) with the templates
# peers/shardcar-mtls.yaml and peers/haproxy-mtls.cfg: TLS 1.3, ECDSA P-256 server and client
# certificates from `shardcar certs`, client certificate required (Shardcar: SPIFFE verifier;
# HAProxy: chain only). The client is `openssl s_time -new` pinned to CPU 1: every connection
# is a full handshake (no resumption), then closed. Per run: proxy CPU (utime+stime from
# /proc/PID/stat, 10 ms ticks) / handshakes → µs per handshake and handshakes per CPU-second
# (= per core); medians (min–max) over REPS, order A B A B …. Prints a Markdown table.
set -euo pipefail
bin=${1:-target/release}
reps=${2:-5}
secs=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/shardcar-handshakes.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

certs=$work/certs
"$bin/shardcar" certs init --trust-domain bench.local --dir "$certs" --force >/dev/null
"$bin/shardcar" certs issue --dir "$certs" --spiffe-id spiffe://bench.local/ns/bench/sa/server \
  --name server --dns localhost >/dev/null
"$bin/shardcar" certs issue --dir "$certs" --spiffe-id spiffe://bench.local/ns/bench/sa/client \
  --name client >/dev/null
cat "$certs/server.pem" "$certs/server-key.pem" >"$certs/server-combined.pem"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
render() { sed -e "s|{{listen}}|127.0.0.1:$2|g" -e "s|{{certs}}|$certs|g" -e "s|{{origin}}|127.0.0.1:9|g" "$1"; }

sc_port=$(free_port)
render "$here/peers/shardcar-mtls.yaml" "$sc_port" >"$work/shardcar.yaml"
SHARDCAR_LOG=error taskset -c 0 "$bin/shardcar" --shards 1 --config "$work/shardcar.yaml" \
  >"$work/shardcar.out" 2>"$work/shardcar.log" &
sc_pid=$!; pids+=("$sc_pid")
hp_port=$(free_port)
render "$here/peers/haproxy-mtls.cfg" "$hp_port" >"$work/haproxy.cfg"
taskset -c 0 haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
hp_pid=$!; pids+=("$hp_pid")
for port in "$sc_port" "$hp_port"; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
declare -A us rate
one() { # name pid port
  local c0 c1 n
  c0=$(cpu "$2")
  n=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$3" -new -time "$secs" \
      -cert "$certs/client.pem" -key "$certs/client-key.pem" -CAfile "$certs/ca.pem" 2>/dev/null |
      awk '/connections in [0-9]+ real seconds/ {print $1; exit}')
  c1=$(cpu "$2")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$1: s_time made no connections" >&2; exit 1; }
  us[$1]+="$(awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$tck" 'BEGIN{printf "%.1f ", (b-a)/t*1e6/n}')"
  rate[$1]+="$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f ", n/s}')"
}
for _ in $(seq "$reps"); do
  one shardcar "$sc_pid" "$sc_port"
  one haproxy "$hp_pid" "$hp_port"
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{m=a[int((NR+1)/2)]; printf "%s (%s–%s)", m, a[1], a[NR]}'; }
medv() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "| new mTLS handshakes, TLS 1.3, P-256, ${reps} reps × ${secs}s | proxy CPU µs/handshake | handshakes per CPU-second (per core) | achieved handshakes/s |"
echo "|---|---|---|---|"
for t in shardcar haproxy; do
  m=$(echo "${us[$t]}" | medv)
  echo "| $t | $(echo "${us[$t]}" | med) | $(awk -v m="$m" 'BEGIN{printf "%.0f", 1e6/m}') | $(echo "${rate[$t]}" | med) |"
done
s=$(echo "${us[shardcar]}" | medv); h=$(echo "${us[haproxy]}" | medv)
awk -v s="$s" -v h="$h" 'BEGIN{printf "\nShardcar handshakes per core / HAProxy: %.2f\n", h/s}'
