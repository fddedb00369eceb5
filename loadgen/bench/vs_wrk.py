#!/usr/bin/env python3
"""Closed-loop max rate: shardload vs `wrk -t1 -c50`, both pinned to CPU 0, against one
shardorigin pinned to CPU 1. Interleaved runs; prints medians and generator CPU per request.
Usage: loadgen/bench/vs_wrk.py [runs] [seconds]   (needs target/release/{shardload,shardorigin})"""
import json, os, re, resource, socket, statistics, subprocess, sys, tempfile, time

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
secs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rel = os.path.join(root, "target", "release")

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
origin = subprocess.Popen(["taskset", "-c", "1", f"{rel}/shardorigin", "--listen",
                           f"127.0.0.1:{port}", "--body-size", "64"], stdout=subprocess.PIPE)
origin.stdout.readline()
url = f"http://127.0.0.1:{port}/"

def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu

def wrk():
    out, cpu = timed(["taskset", "-c", "0", "wrk", "-t1", "-c50", f"-d{secs}s", url])
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), cpu / reqs * 1e6

def shardload():
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        _, cpu = timed(["taskset", "-c", "0", f"{rel}/shardload", url, "--concurrency", "50",
                        "-d", f"{secs}s", "-q", "--json", f.name])
        r = json.load(open(f.name))
    assert r["summary"]["errors"] == 0, r["errors"]
    return r["summary"]["achieved_rps"], cpu / r["summary"]["requests"] * 1e6

res = {"wrk": [], "shardload": []}
try:
    for i in range(runs):
        for name, fn in (("wrk", wrk), ("shardload", shardload)):
            rps, us = fn()
            res[name].append((rps, us))
            print(f"run {i+1} {name:9s} {rps:10.0f} req/s  {us:5.2f} µs CPU/req", flush=True)
finally:
    origin.terminate(); origin.wait()
for name, v in res.items():
    r = [x[0] for x in v]; c = [x[1] for x in v]
    print(f"{name:9s} median {statistics.median(r):10.0f} req/s (min {min(r):.0f}, max {max(r):.0f}); "
          f"median {statistics.median(c):.2f} µs CPU/req")
print(f"ratio shardload/wrk: {statistics.median([x[0] for x in res['shardload']]) / statistics.median([x[0] for x in res['wrk']]):.3f}")
