"""A gRPC server and client (grpcio, raw-bytes generic handlers, no generated code) for
proxy tests.

server: serves /t.T/{Unary,ServerStream,ClientStream,Bidi,Slow} on 127.0.0.1:0, prints the
        port on one line, and runs until stdin closes.
client ADDR: runs unary, server-streaming (1,000 replies), client-streaming (1,000 requests)
        and ping-pong bidi (1,000 round trips, each request sent only after the previous
        reply arrived, so a proxy that buffers a stream deadlocks) through ADDR and prints a
        JSON summary.
status ADDR METHOD [PAYLOAD [PAD]]: one unary call (request PAYLOAD, default "hi", then PAD
        bytes of padding); prints the gRPC status code name, details and reply as JSON.
Flaky: a request "KEY:N..." fails the first N calls with that KEY as UNAVAILABLE
        (trailers-only), details "call <n>"; later calls answer "ok after <n>".
"""
import json
import queue
import sys
import threading
import time
from concurrent import futures

import grpc

N = 1000


def serve():
    def unary(req, ctx):
        return req

    def slow(req, ctx):
        time.sleep(2)
        return req

    def server_stream(req, ctx):
        for i in range(int(req)):
            yield b"r%d" % i

    def client_stream(it, ctx):
        n = total = 0
        for m in it:
            n += 1
            total += len(m)
        return b"%d %d" % (n, total)

    def bidi(it, ctx):
        for m in it:
            yield m

    calls = {}
    lock = threading.Lock()

    def flaky(req, ctx):
        key, n = req.split(b":", 1)
        fail = int(n.split(b" ", 1)[0])
        with lock:
            calls[key] = calls.get(key, 0) + 1
            k = calls[key]
        if k <= fail:
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "call %d" % k)
        return b"ok after %d" % k

    h = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", h),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


def client(addr):
    out = {}
    with grpc.insecure_channel(addr) as ch:
        out["unary"] = ch.unary_unary("/t.T/Unary")(b"hello", timeout=10).decode()
        replies = list(ch.unary_stream("/t.T/ServerStream")(b"%d" % N, timeout=30))
        out["server_stream"] = len(replies)
        out["server_stream_last"] = replies[-1].decode()
        msgs = (b"x" * (i % 100) for i in range(N))
        out["client_stream"] = ch.stream_unary("/t.T/ClientStream")(msgs, timeout=30).decode()
        q = queue.Queue()

        def ping_pong():
            for i in range(N):
                yield b"m%d" % i
                q.get(timeout=10)  # the previous reply must have come back first

        got = 0
        for r in ch.stream_stream("/t.T/Bidi")(ping_pong(), timeout=60):
            if r != b"m%d" % got:
                raise SystemExit("bidi out of order at %d: %r" % (got, r))
            got += 1
            q.put(None)
        out["bidi"] = got
    print(json.dumps(out))


def status(addr, method, payload=b"hi", pad=0):
    with grpc.insecure_channel(addr) as ch:
        try:
            r = ch.unary_unary(method)(payload + b" " + b"x" * pad, timeout=10)
            print(json.dumps({"code": "OK", "reply": r.decode()}))
        except grpc.RpcError as e:
            print(json.dumps({"code": e.code().name, "details": e.details()}))


if sys.argv[1] == "server":
    serve()
elif sys.argv[1] == "client":
    client(sys.argv[2])
else:
    extra = sys.argv[4:]
    payload = extra[0].encode() if extra else b"hi"
    pad = int(extra[1]) if len(extra) > 1 else 0
    status(sys.argv[2], sys.argv[3], payload, pad)
