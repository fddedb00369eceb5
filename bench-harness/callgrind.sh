#!/usr/bin/env bash
# Instructions per request through a one-shard Shardcar under `valgrind --tool=callgrind`: a
# noise-free signal where hardware counters are unavailable. Runs the proxy twice (N1 and N2
# closed-loop requests over 10 connections) and reports (Ir(N2) - Ir(N1)) / (N2 - N1), which
# cancels start-up and shutdown. Usage: bench-harness/callgrind.sh [bin-dir] [N1] [N2]
# SHARDCAR_RING=epoll selects monoio's epoll driver instead of io_uring.
set -euo pipefail
BIN=${1:-target/release}; N1=${2:-2000}; N2=${3:-12000}
TPL=$(dirname "$0")/peers/shardcar-http.yaml
WORK=$(mktemp -d); trap 'kill $ORIGIN 2>/dev/null; wait $ORIGIN 2>/dev/null; rm -rf "$WORK"' EXIT
taskset -c 1 "$BIN/shardorigin" --listen 127.0.0.1:0 > "$WORK/origin.out" & ORIGIN=$!
for _ in $(seq 100); do grep -q listening "$WORK/origin.out" 2>/dev/null && break; sleep 0.1; done
O=$(awk '{print $4}' "$WORK/origin.out")
sed -e "s/{{listen}}/127.0.0.1:0/" -e "s/{{origin}}/$O/" "$TPL" > "$WORK/sc.yaml"
ir() {  # requests -> total instructions of the proxy process
  SHARDCAR_LOG=warn taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1" \
    "$BIN/shardcar" --shards 1 --config "$WORK/sc.yaml" > "$WORK/sc.$1" 2> "$WORK/vg.$1" & local VG=$!
  for _ in $(seq 3000); do grep -q listening "$WORK/sc.$1" 2>/dev/null && break; sleep 0.1; done
  local A; A=$(awk '{print $3}' "$WORK/sc.$1")
  timeout 300 taskset -c 1 "$BIN/shardload" "http://$A/" --concurrency 10 --connections 10 \
    -n "$1" --json "$WORK/load.$1.json" -q > /dev/null
  python3 -c "import json,sys; r=json.load(open('$WORK/load.$1.json')); e=r['summary']['errors']; sys.exit(f'{e} errors') if e else None"
  kill -TERM $VG; wait $VG || true
  awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.$1"*
}
I1=$(ir "$N1"); I2=$(ir "$N2")
echo "ring=${SHARDCAR_RING:-default} Ir($N1)=$I1 Ir($N2)=$I2 instructions/request=$(( (I2 - I1) / (N2 - N1) ))"
