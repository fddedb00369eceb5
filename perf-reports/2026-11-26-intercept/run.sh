#!/usr/bin/env bash
# Added latency of inbound capture: REDIRECT vs TPROXY (iptables backend), against the direct
# path, in two network namespaces joined by a veth pair. Interleaved A B C x REPS; each run is
# shardload open loop at RPS over CONNS keep-alive connections. Proxy pinned to CPU 0, origin
# and load generator to CPU 1. Needs root. Writes raw JSON to raw/ and prints the summary.
#   SHARDCAR=... SHARDLOAD=... SHARDORIGIN=... perf-reports/2026-11-26-intercept/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SHARDCAR=${SHARDCAR:-$root/target/release/shardcar}
SHARDLOAD=${SHARDLOAD:?path to shardload}
SHARDORIGIN=${SHARDORIGIN:?path to shardorigin}
RPS=${RPS:-4000} CONNS=${CONNS:-16} DUR=${DUR:-10s} WARM=${WARM:-2s} REPS=${REPS:-3}
app=bench-app-$$ peer=bench-peer-$$ va=sba$$ vp=sbp$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$app" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$app"; ip netns add "$peer"
ip link add "$va" type veth peer name "$vp"
ip link set "$va" netns "$app"; ip link set "$vp" netns "$peer"
ip -n "$app" addr add 10.200.0.1/24 dev "$va"; ip -n "$peer" addr add 10.200.0.2/24 dev "$vp"
for ns in "$app" "$peer"; do ip -n "$ns" link set lo up; done
ip -n "$app" link set "$va" up; ip -n "$peer" link set "$vp" up

ip netns exec "$app" taskset -c 1 "$SHARDORIGIN" --listen 0.0.0.0:8080 & pids+=($!)
ip netns exec "$app" env NO_COLOR=1 taskset -c 0 "$SHARDCAR" --config "$root/kernel-config/shardcar.yaml" --shards 1 \
  > "$here/shardcar.stdout" 2> "$here/shardcar.log" & pids+=($!)
for _ in $(seq 50); do grep -q "listening inbound" "$here/shardcar.stdout" 2>/dev/null && break; sleep 0.1; done

rules() { # $1 = none | redirect | tproxy
  ip netns exec "$app" "$SHARDCAR" intercept uninstall --mark 0x539
  [ "$1" = none ] || ip netns exec "$app" "$SHARDCAR" intercept install --mark 0x539 --mode "$1"
}
mkdir -p "$here/raw"
for rep in $(seq "$REPS"); do
  for scen in direct redirect tproxy; do
    rules "$([ $scen = direct ] && echo none || echo $scen)"
    ip netns exec "$peer" taskset -c 1 "$SHARDLOAD" http://10.200.0.1:8080/ --rps "$RPS" -c "$CONNS" \
      -d "$DUR" --warmup "$WARM" -q --json "$here/raw/$scen-$rep.json" > /dev/null & load=$!
    sleep 3 # mid-run: is the proxy in the path? (its upstream legs go to 127.0.0.1:8080)
    via=$(ip netns exec "$app" ss -Htn state established dst 127.0.0.1:8080 | wc -l)
    wait "$load"
    want=$([ $scen = direct ] && echo 0 || echo "$CONNS")
    [ "$via" = "$want" ] || { echo "$scen: $via proxied connections, expected $want" >&2; exit 1; }
    echo "$scen rep $rep: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency_us"]; s=d["summary"]; print("p50 %s us, p99 %s us, rps %.0f, errors %s" % (l["p50"], l["p99"], s["achieved_rps"], s["errors"]))' "$here/raw/$scen-$rep.json")"
  done
done
rules none
python3 - "$here/raw" "$REPS" <<'PY'
import json, statistics, sys
raw, reps = sys.argv[1], int(sys.argv[2])
def runs(s): return [json.load(open(f"{raw}/{s}-{r}.json")) for r in range(1, reps + 1)]
rows = {s: runs(s) for s in ("direct", "redirect", "tproxy")}
med = {s: {q: statistics.median(d["latency_us"][q] for d in rows[s]) for q in ("p50", "p99")} for s in rows}
print(f"| path | p50 µs (median of {reps}) | p99 µs | added p50 vs direct | added p99 vs direct | errors |")
print("|---|---|---|---|---|---|")
for s in rows:
    rng = lambda q: f"{min(d['latency_us'][q] for d in rows[s]):.0f}–{max(d['latency_us'][q] for d in rows[s]):.0f}"
    errs = sum(d["summary"]["errors"] for d in rows[s])
    add = lambda q: "—" if s == "direct" else f"{med[s][q] - med['direct'][q]:+.0f}"
    print(f"| {s} | {med[s]['p50']:.0f} ({rng('p50')}) | {med[s]['p99']:.0f} ({rng('p99')}) | {add('p50')} | {add('p99')} | {errs} |")
PY
rm -f "$here/shardcar.stdout"
