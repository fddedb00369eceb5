#!/usr/bin/env bash
# How long a /stats/prometheus scrape takes with many clusters: shardcar (--shards SHARDS) with
# CLUSTERS clusters, each behind its own route, every cluster sent REQS requests (so every
# series and histogram is populated), then SCRAPES scrapes timed by curl; prints min / median /
# p90 / max in ms and the body size. Usage:
#   bench-harness/scrape-bench.sh [target/release] [CLUSTERS=100] [SHARDS=2] [SCRAPES=50] [REQS=20]
set -euo pipefail
bin=${1:-target/release}
clusters=${2:-100}
shards=${3:-2}
scrapes=${4:-50}
reqs=${5:-20}
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
oport=$(port); wport=$(port); aport=$(port)
"$bin/shardorigin" --listen "127.0.0.1:$oport" >/dev/null &
pids+=($!)
{
  echo "admin: {address: 127.0.0.1:$aport, health_address: off}"
  echo "listeners:"
  echo "  - name: web"
  echo "    address: 127.0.0.1:$wport"
  echo "    protocol: http"
  echo "    virtual_hosts:"
  echo "      - name: all"
  echo "        domains: [\"*\"]"
  echo "        routes:"
  for i in $(seq 1 "$clusters"); do
    echo "          - {match: {prefix: \"/c$i/\"}, cluster: c$i}"
  done
  echo "clusters:"
  for i in $(seq 1 "$clusters"); do
    echo "  - {name: c$i, endpoints: [\"127.0.0.1:$oport\"]}"
  done
} >"$dir/config.yaml"
SHARDCAR_LOG=warn "$bin/shardcar" --shards "$shards" --no-watch --config "$dir/config.yaml" >"$dir/out" 2>"$dir/err" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening admin" "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep -q "listening admin" "$dir/out" || { cat "$dir/err"; exit 1; }
urls=()
for i in $(seq 1 "$clusters"); do
  for j in $(seq 1 "$reqs"); do urls+=("http://127.0.0.1:$wport/c$i/$j"); done
done
# Many requests per curl process (keepalive), several connections so both shards see traffic.
printf '%s\n' "${urls[@]}" | xargs -P 4 -n 200 curl -s >/dev/null
curl -s "http://127.0.0.1:$aport/stats/prometheus" >"$dir/body"
series=$(grep -vc '^#' "$dir/body")
bytes=$(wc -c <"$dir/body")
for _ in $(seq "$scrapes"); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$aport/stats/prometheus"
done | sort -n | awk -v c="$clusters" -v s="$shards" -v n="$series" -v b="$bytes" '
  { t[NR] = $1 * 1000 }
  END { printf "scrape /stats/prometheus: %d clusters x %d shards, %d series, %d bytes: min %.2f ms, median %.2f ms, p90 %.2f ms, max %.2f ms (%d scrapes)\n",
        c, s, n, b, t[1], t[int((NR + 1) / 2)], t[int(NR * 0.9)], t[NR], NR }'
