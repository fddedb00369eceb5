"""A test SPIFFE Workload API server: FetchX509SVID over a unix socket, built at start from
proxy/proto/workload.proto with grpcio-tools (the proto the proxy's client is written from).

Usage: workload_api_server.py SOCKET DIR SPIFFE_ID. DIR holds svid.pem, svid-key.pem (PKCS#8),
bundle.pem (PEM, as the dev CA writes them); they are sent DER-encoded, as the spec says. Commands on stdin,
one per line: `send` reads DIR again and pushes a response to every open stream (and to
streams opened later); `drop` ends every open stream (the client must reconnect). Prints
`ready` once the socket listens. Calls without `workload.spiffe.io: true` are refused.
"""
import base64
import os
import queue
import re
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_tools import protoc

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
OUT = tempfile.mkdtemp(prefix="workload-pb-")
rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={OUT}", f"--grpc_python_out={OUT}",
                  os.path.join(PROTO_DIR, "workload.proto")])
if rc != 0:
    sys.exit(f"protoc failed: {rc}")
sys.path.insert(0, OUT)
import workload_pb2  # noqa: E402
import workload_pb2_grpc  # noqa: E402


def der(path, kind):
    """The concatenated DER of every `kind` PEM block in the file."""
    with open(path) as f:
        text = f.read()
    blocks = re.findall(rf"-----BEGIN {kind}-----(.*?)-----END {kind}-----", text, re.S)
    return b"".join(base64.b64decode("".join(b.split())) for b in blocks)


def load(d, spiffe_id):
    svid = workload_pb2.X509SVID(
        spiffe_id=spiffe_id,
        x509_svid=der(os.path.join(d, "svid.pem"), "CERTIFICATE"),
        x509_svid_key=der(os.path.join(d, "svid-key.pem"), "PRIVATE KEY"),
        bundle=der(os.path.join(d, "bundle.pem"), "CERTIFICATE"))
    return workload_pb2.X509SVIDResponse(svids=[svid])


class Api(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    def __init__(self, d, spiffe_id):
        self.dir = d
        self.id = spiffe_id
        self.lock = threading.Lock()
        self.current = load(d, spiffe_id)
        self.streams = []

    def push(self):
        r = load(self.dir, self.id)
        with self.lock:
            self.current = r
            for q in self.streams:
                q.put(r)

    def drop(self):
        with self.lock:
            for q in self.streams:
                q.put(None)

    def FetchX509SVID(self, request, context):
        md = dict(context.invocation_metadata())
        if md.get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing")
        q = queue.Queue()
        with self.lock:
            self.streams.append(q)
            q.put(self.current)
        try:
            while context.is_active():
                try:
                    r = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if r is None:
                    return
                yield r
        finally:
            with self.lock:
                self.streams.remove(q)


def main():
    sock, d, spiffe_id = sys.argv[1], sys.argv[2], sys.argv[3]
    api = Api(d, spiffe_id)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(api, server)
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "send":
            api.push()
        elif cmd == "drop":
            api.drop()
        print("ok", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
