#!/usr/bin/env bash
# User and kernel CPU per request of proxy targets, measured side by side: each repetition runs
# every target in turn (interleaved: A B A B …) over N closed-loop requests after a warm-up, and
# reads the proxy's utime and stime from /proc/PID/stat (clock ticks) around them. Prints each
# run and then the medians. Shows whether a CPU gap between two proxies is in user space or in
# the kernel (kernel-ops.sh counts the kernel operations behind the second).
# Usage: bench-harness/cpu-split.sh [bin-dir] [N] [reps] target...
#   targets: peers/ templates, e.g. shardcar-h2 haproxy-h2, or shardcar-http haproxy-http
# Environment: CS_CONNECTIONS (requests in flight, default 50), CS_H2_CONNECTIONS (h2: the
# connections they share, e.g. 10 with CS_CONNECTIONS=100 and CS_LOAD_ARGS="--streams 10" for
# h2load -c10 -m10), CS_LOAD_ARGS (extra shardload arguments).
set -euo pipefail
BIN=${1:-target/release}; N=${2:-100000}; REPS=${3:-5}; shift 3 || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(shardcar-h2 haproxy-h2)
HZ=$(getconf CLK_TCK)
one() (  # target → "user_us sys_us" per request
  TARGET=$1; CONNS=${CS_CONNECTIONS:-50}; LOAD_ARGS=${CS_LOAD_ARGS:-}
  case "$TARGET" in *-h2) LOAD_CONNS=${CS_H2_CONNECTIONS:-} ;; esac
  # shellcheck source=one-target.sh
  source "$(dirname "$0")/one-target.sh"
  load 5000  # warm: connections open, pools filled
  read -r u0 s0 < <(awk '{sub(/.*\) /, ""); print $12, $13}' "/proc/$PROXY/stat")
  load "$N"
  read -r u1 s1 < <(awk '{sub(/.*\) /, ""); print $12, $13}' "/proc/$PROXY/stat")
  python3 -c "print(f'{($u1-$u0)/$HZ/$N*1e6:.2f} {($s1-$s0)/$HZ/$N*1e6:.2f}')"
)
OUT=$(mktemp)
for rep in $(seq "$REPS"); do
  for t in "${TARGETS[@]}"; do
    r=$(one "$t"); echo "rep=$rep target=$t user_us/req=${r% *} sys_us/req=${r#* }"
    echo "$t $r" >> "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, u, s = line.split(); d[t].append((float(u), float(s)))
print(f"{'median over reps':<18}{'user µs/req':>12}{'sys µs/req':>12}{'total':>8}")
for t, v in d.items():
    u = statistics.median(x[0] for x in v); s = statistics.median(x[1] for x in v)
    tot = statistics.median(x[0] + x[1] for x in v)
    print(f"{t:<18}{u:>12.2f}{s:>12.2f}{tot:>8.2f}")
PY
rm -f "$OUT"
