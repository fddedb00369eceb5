#!/usr/bin/env bash
# The deterministic half of the CI gate: user-space instructions per request of the h1 and L4
# paths under callgrind (bench-harness/callgrind.sh, epoll driver, one connection, one request
# in flight, origin and load serialised behind the proxy on its CPU — CG_SERIAL), the median of
# REPS runs per path, compared with perf-reports/ir-baseline.txt.
# Fails when a path grew by more than IR_GROWTH (default 0.05): a 10 % hot-path regression is
# caught while the run-to-run spread (see bench-harness/README.md, "Instruction gate") stays
# well inside it. The time-based gate (`shardbench ci`) stays the second signal.
# Usage: bench-harness/ir-gate.sh [bin-dir]            compare with the baseline
#        bench-harness/ir-gate.sh [bin-dir] --baseline  rewrite the baseline
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-target/release}; MODE=${2:-check}
REPS=${IR_REPS:-3}; GROWTH=${IR_GROWTH:-0.05}; N1=${IR_N1:-1000}; N2=${IR_N2:-4000}
BASE=$HERE/../perf-reports/ir-baseline.txt
command -v valgrind >/dev/null || { echo "ir-gate: valgrind not installed" >&2; exit 2; }
measure() {  # target -> median instructions/request over REPS runs
  local runs=()
  for _ in $(seq "$REPS"); do
    local line
    line=$(CG_TARGET=$1 CG_CONNECTIONS=1 CG_SERIAL=1 SHARDCAR_RING=epoll "$HERE/callgrind.sh" "$BIN" "$N1" "$N2")
    echo "ir-gate: $line" >&2
    runs+=("${line##*instructions/request=}")
  done
  printf '%s\n' "${runs[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
status=0; out=""
for t in shardcar-http shardcar-copy; do
  got=$(measure "$t")
  out+="$t $got"$'\n'
  [ "$MODE" = --baseline ] && continue
  want=$(awk -v t="$t" '$1 == t {print $2}' "$BASE")
  [ -n "$want" ] || { echo "ir-gate: $BASE has no $t" >&2; exit 2; }
  verdict=$(awk -v g="$got" -v w="$want" -v x="$GROWTH" \
    'BEGIN {r = g / w; printf "%.3f %s", r, (r > 1 + x) ? "FAIL" : "ok"}')
  echo "ir-gate: $t instructions/request $got vs baseline $want: ratio ${verdict% *} (limit $(awk -v x="$GROWTH" 'BEGIN{print 1+x}')) ${verdict#* }"
  [ "${verdict#* }" = ok ] || status=1
done
if [ "$MODE" = --baseline ]; then
  { echo "# user-space instructions per request: callgrind, epoll driver, 1 connection, median of $REPS"
    echo "# (bench-harness/ir-gate.sh --baseline, $(date -u +%F), $(git -C "$HERE/.." rev-parse --short HEAD))"
    printf '%s' "$out"; } > "$BASE"
  cat "$BASE"
fi
exit $status
