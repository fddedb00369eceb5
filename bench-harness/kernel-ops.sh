#!/usr/bin/env bash
# Kernel work per request of one proxy: system calls (by name) and, for Shardcar on io_uring,
# ring submissions (by opcode), counted with perf tracepoints over N closed-loop requests and
# divided by N. Counts, not times, so they hold on a busy machine. Run as root.
# Usage: bench-harness/kernel-ops.sh [bin-dir] [N] [target]
#   target: a peers/ template: shardcar-http (default), shardcar-copy, shardcar-h2,
#           haproxy-http, haproxy-tcp, haproxy-h2
# Environment: KO_LOAD_ARGS (extra shardload arguments; `--h2` is added for *-h2 targets),
#              KO_CONNECTIONS (default 50), SHARDCAR_RING (monoio driver; default io_uring).
# Prints a table: per request, the calls and submissions that occur ≥ 0.01 times per request.
set -euo pipefail
BIN=${1:-target/release}; N=${2:-20000}; TARGET=${3:-shardcar-http}
CONNS=${KO_CONNECTIONS:-50}; LOAD_ARGS=${KO_LOAD_ARGS:-}
# shellcheck source=one-target.sh
source "$(dirname "$0")/one-target.sh"
load 2000  # warm: connections open, pools filled
perf record -q -o "$WORK/perf.data" -e raw_syscalls:sys_enter -e io_uring:io_uring_submit_req \
  -p "$PROXY" > /dev/null 2>&1 & PERF=$!
sleep 1
load "$N"
sleep 0.2
kill -INT $PERF; wait $PERF 2>/dev/null || true
perf script -i "$WORK/perf.data" -F event,trace 2>/dev/null | python3 -c "
import re, sys, collections
n = $N
names = {}
try:
    import subprocess
    out = subprocess.run(['ausyscall', '--dump'], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        k, v = line.split(); names[int(k)] = v
except Exception:
    pass
fallback = {0:'read',1:'write',3:'close',7:'poll',20:'writev',23:'select',41:'socket',42:'connect',
  43:'accept',44:'sendto',45:'recvfrom',46:'sendmsg',47:'recvmsg',54:'setsockopt',55:'getsockopt',
  202:'futex',228:'clock_gettime',232:'epoll_wait',233:'epoll_ctl',281:'epoll_pwait',288:'accept4',
  426:'io_uring_enter',441:'epoll_pwait2',230:'clock_nanosleep',35:'nanosleep',24:'sched_yield',
  262:'newfstatat',13:'rt_sigaction',14:'rt_sigprocmask',16:'ioctl',72:'fcntl',257:'openat'}
c = collections.Counter()
for line in sys.stdin:
    if 'sys_enter' in line:
        m = re.search(r'NR (\d+)', line)
        if m:
            k = int(m.group(1)); c['syscall ' + names.get(k, fallback.get(k, str(k)))] += 1
    elif 'io_uring_submit_req' in line:
        m = re.search(r'opcode (\S+)', line)
        c['uring ' + (m.group(1) if m else '?')] += 1
sys_total = sum(v for k, v in c.items() if k.startswith('syscall'))
ur_total = sum(v for k, v in c.items() if k.startswith('uring'))
print(f'target=$TARGET ring=${SHARDCAR_RING:-default} connections=$CONNS requests={n}')
print(f'{\"per request\":<34}{\"count\":>8}')
for k, v in sorted(c.items(), key=lambda kv: -kv[1]):
    if v / n >= 0.01:
        print(f'{k:<34}{v/n:>8.2f}')
print(f'{\"syscalls total\":<34}{sys_total/n:>8.2f}')
print(f'{\"ring submissions total\":<34}{ur_total/n:>8.2f}')
"
