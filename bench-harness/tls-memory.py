#!/usr/bin/env python3
"""Memory per idle TLS connection: Shardcar vs HAProxy (hand-run; the harness's `memory`
client speaks plaintext only).

Usage: bench-harness/tls-memory.py BIN_DIR [N] [REPS]   (default N=2000, REPS=3)
Starts shardorigin, then per rep and target (interleaved) a fresh proxy from
peers/shardcar-https.yaml / peers/haproxy-https.cfg pinned to CPU 0, reads VmRSS, opens N TLS
1.3 connections (Python ssl, pinned to CPU 1), one GET on each, waits 2 s, reads VmRSS again.
Prints KiB per connection = (loaded - idle) / N, median (min-max).
"""
import os, socket, ssl, subprocess, sys, tempfile, time, statistics

bin_dir = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="shardcar-tlsmem-")
certs = os.path.join(work, "certs")
sc = os.path.join(bin_dir, "shardcar")
subprocess.run([sc, "certs", "init", "--trust-domain", "bench.local", "--dir", certs, "--force"], check=True, capture_output=True)
subprocess.run([sc, "certs", "issue", "--dir", certs, "--spiffe-id", "spiffe://bench.local/ns/bench/sa/server", "--name", "server", "--dns", "localhost"], check=True, capture_output=True)
with open(os.path.join(certs, "server-combined.pem"), "w") as f:
    f.write(open(os.path.join(certs, "server.pem")).read() + open(os.path.join(certs, "server-key.pem")).read())
os.sched_setaffinity(0, {1})


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(p):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close(); return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {p} never opened")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


origin_port = free_port()
origin = subprocess.Popen(["taskset", "-c", "1", os.path.join(bin_dir, "shardorigin"), "--listen", f"127.0.0.1:{origin_port}"], stdout=subprocess.DEVNULL)
wait_port(origin_port)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.set_alpn_protocols(["http/1.1"])


def start(target):
    port = free_port()
    tpl = open(os.path.join(here, "peers", target + (".yaml" if target.startswith("shardcar") else ".cfg"))).read()
    conf = os.path.join(work, target + ".conf")
    open(conf, "w").write(tpl.replace("{{listen}}", f"127.0.0.1:{port}").replace("{{certs}}", certs).replace("{{origin}}", f"127.0.0.1:{origin_port}"))
    if target.startswith("shardcar"):
        cmd = ["taskset", "-c", "0", sc, "--shards", "1", "--config", conf]
        env = dict(os.environ, SHARDCAR_LOG="error")
    else:
        cmd = ["taskset", "-c", "0", "haproxy", "-db", "-f", conf]
        env = None
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_port(port)
    return p, port


res = {"shardcar-https": [], "haproxy-https": []}
try:
    for _ in range(reps):
        for target in res:
            p, port = start(target)
            time.sleep(0.5)
            idle = rss_kib(p.pid)
            conns = []
            for i in range(n):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf or len(buf) < buf.index(b"\r\n\r\n") + 4 + 64:
                    buf += s.recv(4096)
                conns.append(s)
            time.sleep(2)
            loaded = rss_kib(p.pid)
            res[target].append((loaded - idle) / n)
            for s in conns:
                s.close()
            p.terminate(); p.wait()
finally:
    origin.terminate()
print(f"| idle TLS 1.3 connections ({n}, one GET each), {reps} reps | KiB per connection, median (min-max) |")
print("|---|---|")
for t, v in res.items():
    print(f"| {t} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) |")
