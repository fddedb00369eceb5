#!/usr/bin/env python3
"""app -> sidecar -> local app, interleaved: direct, iptables REDIRECT, eBPF, eBPF + sockmap.

Root only. One network namespace with a veth interface (10.250.0.1, the "local app" address),
shardorigin on it, Shardcar's outbound passthrough listener on 15001 (upstream_mark 0x539) and
shardload as the app, all in one fresh cgroup v2 directory. Pinning: proxy on CPU 0, origin and
loadgen on CPU 1 (taskset). Per repetition and mode: closed loop (8 keep-alive connections,
concurrency 8) for CPU per request, then an open loop at a fixed rate for p50/p99.
Usage: run.py BIN_DIR OUT_DIR [reps] [seconds]; SC_INTERCEPT_BIN: a `--features ebpf` shardcar
for the install/uninstall commands (the data-path proxy is BIN_DIR/shardcar).
"""
import json, os, subprocess, sys, time

BIN, OUT = sys.argv[1], sys.argv[2]
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
SECS = sys.argv[4] if len(sys.argv) > 4 else "2s"
RATE = "2000"
NS = f"scbench{os.getpid()}"
CGROOT = next(l.split()[1] for l in open("/proc/self/mounts") if l.split()[2] == "cgroup2")
CG = f"{CGROOT}/shardcar-bench-{os.getpid()}"
BPFFS = f"/tmp/shardcar-bench-bpffs-{os.getpid()}"
APP = "10.250.0.1"
CFG = """upstream_mark: 0x539
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    original_dst: true
    cluster: passthrough
clusters:
  - name: passthrough
    type: original_dst
"""

def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw).stdout

def spawn(cpu, *argv, **kw):
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', CG,
                             "taskset", "-c", str(cpu), "ip", "netns", "exec", NS, *argv], **kw)

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def host_busy():
    busy = 0
    for l in open("/proc/stat"):
        if l.startswith("cpu0 ") or l.startswith("cpu1 "):
            v = list(map(int, l.split()[1:]))
            busy += sum(v) - v[3] - v[4]
    return busy

def intercept(verb, mode):
    tool = os.environ.get("SC_INTERCEPT_BIN", f"{BIN}/shardcar")
    base = [tool, "intercept", verb, "--mark", "0x539"]
    if mode == "iptables":
        args = base + ["--mode", "redirect", "--inbound-ports", ""]
        sh("ip", "netns", "exec", NS, *args)
    elif mode.startswith("ebpf"):
        args = base + ["--mode", "ebpf", "--cgroup", CG, "--bpffs", BPFFS]
        if mode == "ebpf+sockmap" and verb == "install":
            args.append("--accelerate")
        sh(*args)

def load(extra, out):
    argv = [f"{BIN}/shardload", f"http://{APP}:8080/", "--shards", "1", "-d", SECS,
            "--warmup", "1s", "--json", out, "--quiet"] + extra
    p = spawn(1, *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return json.load(open(out))

def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CG, exist_ok=True)
    os.makedirs(BPFFS, exist_ok=True)
    sh("mount", "-t", "bpf", "bpf", BPFFS)
    sh("ip", "netns", "add", NS)
    procs = []
    try:
        for c in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"], ["ip", "link", "set", "d1", "up"],
                  ["ip", "addr", "add", f"{APP}/24", "dev", "d0"], ["ip", "link", "set", "d0", "up"]):
            sh("ip", "netns", "exec", NS, *c)
        cfg = f"{OUT}/shardcar.yaml"
        open(cfg, "w").write(CFG)
        procs.append(spawn(1, f"{BIN}/shardorigin", "--listen", f"{APP}:8080", "--shards", "1",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        proxy = spawn(0, f"{BIN}/shardcar", "--config", cfg, "--shards", "1",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        time.sleep(1)
        rows = []
        for rep in range(REPS):
            for mode in ["direct", "iptables", "ebpf", "ebpf+sockmap"]:
                intercept("install", mode)
                try:
                    p0, h0 = cpu_ticks(proxy.pid), host_busy()
                    c = load(["--concurrency", "8", "--connections", "8"],
                             f"{OUT}/raw-{rep}-{mode}-closed.json")
                    p1, h1 = cpu_ticks(proxy.pid), host_busy()
                    o = load(["--rps", RATE, "--connections", "8"],
                             f"{OUT}/raw-{rep}-{mode}-open.json")
                finally:
                    intercept("uninstall", mode)
                n = c["summary"]["requests"]
                hz = os.sysconf("SC_CLK_TCK")
                # CPU is sampled around the whole closed-loop run (1 s warm-up included):
                # divide by all requests sent in it, i.e. measured rps x (warm-up + measured).
                total = c["summary"]["achieved_rps"] * (1.0 + c["summary"]["measured_s"])
                rows.append(dict(rep=rep, mode=mode, rps=c["summary"]["achieved_rps"],
                                 errors=c["summary"]["errors"] + o["summary"]["errors"],
                                 proxy_us=(p1 - p0) / hz * 1e6 / total,
                                 host_us=(h1 - h0) / hz * 1e6 / total,
                                 p50=o["latency_us"]["p50"], p99=o["latency_us"]["p99"],
                                 measured=n))
                print(json.dumps(rows[-1]), flush=True)
        json.dump(rows, open(f"{OUT}/rows.json", "w"), indent=1)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", NS])
        subprocess.run(["umount", BPFFS])
        os.rmdir(BPFFS)
        for _ in range(50):
            try:
                os.rmdir(CG)
                break
            except OSError:
                time.sleep(0.1)

main()
