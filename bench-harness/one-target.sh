# Sourced by kernel-ops.sh and cpu-split.sh: starts shardorigin (CPU 1) and one proxy target
# (CPU 0) from its peers/ template, and defines `load N` (N closed-loop requests from CPU 1,
# failing on any error). Expects BIN, TARGET and CONNS (requests in flight;
# LOAD_CONNS, if set, the connections they share: h2 streams per connection = CONNS/LOAD_CONNS); sets WORK, PIDS, PORT and PROXY.
# Targets: shardcar-http, shardcar-copy, shardcar-h2, haproxy-http, haproxy-tcp, haproxy-h2.
HERE=$(dirname "${BASH_SOURCE[0]}")
case "$TARGET" in
  shardcar-*) TPL=$HERE/peers/$TARGET.yaml ;;
  haproxy-*) TPL=$HERE/peers/$TARGET.cfg ;;
  *) echo "$(basename "$0"): unknown target $TARGET" >&2; exit 2 ;;
esac
LOAD_ARGS=${LOAD_ARGS:-}
case "$TARGET" in *-h2) LOAD_ARGS="--h2 $LOAD_ARGS" ;; esac
WORK=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
taskset -c 1 "$BIN/shardorigin" --listen 127.0.0.1:0 > "$WORK/origin.out" & PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/origin.out" 2>/dev/null && break; sleep 0.1; done
O=$(awk '{print $4}' "$WORK/origin.out")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/{{listen}}/127.0.0.1:$PORT/" -e "s/{{origin}}/$O/" "$TPL" > "$WORK/conf"
case "$TARGET" in
  shardcar-*) SHARDCAR_LOG=warn taskset -c 0 "$BIN/shardcar" --shards 1 --config "$WORK/conf" \
                > "$WORK/proxy.out" 2>&1 & PIDS+=($!) ;;
  haproxy-*) taskset -c 0 haproxy -q -db -f "$WORK/conf" > "$WORK/proxy.out" 2>&1 & PIDS+=($!) ;;
esac
PROXY=${PIDS[-1]}
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
  sleep 0.1
done
load() {  # requests
  taskset -c 1 "$BIN/shardload" "http://127.0.0.1:$PORT/" --concurrency "$CONNS" \
    --connections "${LOAD_CONNS:-$CONNS}" $LOAD_ARGS -n "$1" --json "$WORK/load.json" -q > /dev/null
  python3 -c "import json,sys; e=json.load(open('$WORK/load.json'))['summary']['errors']; sys.exit(f'{e} errors') if e else None"
}
