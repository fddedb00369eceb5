#!/usr/bin/env bash
# Instructions per request through a one-shard Shardcar under `valgrind --tool=callgrind`: a
# signal that does not depend on how busy the machine is. Runs the proxy twice (N1 and N2
# closed-loop requests) and reports (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up and
# shutdown. Usage: bench-harness/callgrind.sh [bin-dir] [N1] [N2]
# Environment:
#   CG_TARGET       peers/ template: shardcar-http (default; the h1 path) or shardcar-copy (L4)
#   CG_CONNECTIONS  concurrent connections (default 10). 1 gives one request in flight, the
#                   steadiest count: no batching of events that depends on timing (ir-gate.sh).
#   CG_SERIAL       1: origin and load share the proxy's CPU at SCHED_IDLE (see below); the
#                   count then repeats to ±0.1 % however busy the machine is. Unset: they run
#                   on CPU 1 and the count varies by ±8 % with timing (extra polls, wakeups).
#   CG_LOAD_ARGS    extra shardload arguments, e.g. `--h2` with CG_TARGET=shardcar-h2 (h2c → h1)
#   SHARDCAR_RING   monoio driver (epoll for the gate: valgrind does not model io_uring's shared
#                   rings; the flags themselves are guarded by wire's unit test).
# Prints one line: `target=… ring=… connections=… Ir(N1)=… Ir(N2)=… instructions/request=…`.
set -euo pipefail
BIN=${1:-target/release}; N1=${2:-2000}; N2=${3:-12000}
TARGET=${CG_TARGET:-shardcar-http}; CONNS=${CG_CONNECTIONS:-10}
TPL=$(dirname "$0")/peers/$TARGET.yaml
# CG_SERIAL=1: origin and load on the proxy's CPU at SCHED_IDLE, so they run only while the
# proxy sleeps: every read the proxy tries finds its socket empty, the same for every run.
if [ -n "${CG_SERIAL:-}" ]; then OTHER="taskset -c 0 chrt --idle 0"; else OTHER="taskset -c 1"; fi
[ -f "$TPL" ] || { echo "callgrind.sh: no template $TPL" >&2; exit 2; }
WORK=$(mktemp -d); trap 'kill $ORIGIN 2>/dev/null; wait $ORIGIN 2>/dev/null; [ -n "${CG_KEEP:-}" ] || rm -rf "$WORK"' EXIT
[ -z "${CG_KEEP:-}" ] || echo "callgrind.sh: keeping $WORK" >&2
$OTHER "$BIN/shardorigin" --listen 127.0.0.1:0 > "$WORK/origin.out" & ORIGIN=$!
for _ in $(seq 100); do grep -q listening "$WORK/origin.out" 2>/dev/null && break; sleep 0.1; done
O=$(awk '{print $4}' "$WORK/origin.out")
sed -e "s/{{listen}}/127.0.0.1:0/" -e "s/{{origin}}/$O/" "$TPL" > "$WORK/sc.yaml"
ir() {  # requests -> total instructions of the proxy process
  SHARDCAR_LOG=warn taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1" \
    "$BIN/shardcar" --shards 1 --config "$WORK/sc.yaml" > "$WORK/sc.$1" 2> "$WORK/vg.$1" & local VG=$!
  for _ in $(seq 3000); do grep -q listening "$WORK/sc.$1" 2>/dev/null && break; sleep 0.1; done
  local A; A=$(awk '{print $3}' "$WORK/sc.$1")
  [ -n "$A" ] || { echo "callgrind.sh: proxy did not start, see:" >&2; cat "$WORK/vg.$1" >&2; exit 1; }
  timeout 300 $OTHER "$BIN/shardload" "http://$A/" --concurrency "$CONNS" \
    --connections "$CONNS" ${CG_LOAD_ARGS:-} -n "$1" --json "$WORK/load.$1.json" -q > /dev/null
  python3 -c "import json,sys; r=json.load(open('$WORK/load.$1.json')); e=r['summary']['errors']; sys.exit(f'{e} errors') if e else None"
  kill -TERM $VG; wait $VG || true
  awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.$1"*
}
I1=$(ir "$N1"); I2=$(ir "$N2")
echo "target=$TARGET ring=${SHARDCAR_RING:-default} connections=$CONNS Ir($N1)=$I1 Ir($N2)=$I2 instructions/request=$(( (I2 - I1) / (N2 - N1) ))"
