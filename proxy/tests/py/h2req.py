"""One HTTP/2 (h2c prior knowledge) request with the `h2` library, for proxy tests.

usage: h2req.py HOST:PORT METHOD PATH BODY_BYTES [trailer=name:value ...] [header=name:value ...] [grpc]
(`grpc`: the body is one gRPC message of BODY_BYTES bytes.)
Sends BODY_BYTES of a fixed pattern as DATA without content-length (so the proxy must stream
it chunked), then the trailers. Prints one JSON line: status, headers, trailers, the body's
sha256 and length, and the sha256 of what was sent.
"""
import hashlib
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    method, path, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    trailers, extra, grpc_frame = [], [], False
    for a in sys.argv[5:]:
        if a == "grpc":
            grpc_frame = True
            continue
        kind, kv = a.split("=", 1)
        name, value = kv.split(":", 1)
        (trailers if kind == "trailer" else extra).append((name.strip(), value.strip()))
    body = bytes((i * 7 + 3) % 256 for i in range(n))
    if grpc_frame:  # one uncompressed gRPC message of n bytes
        body = b"\x00" + n.to_bytes(4, "big") + body
        n = len(body)
    s = socket.create_connection((host, int(port)), timeout=20)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.increment_flow_control_window(1 << 24)
    headers = [(":method", method), (":path", path), (":scheme", "http"),
               (":authority", sys.argv[1])] + extra
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, headers, end_stream=(n == 0 and not trailers))
    s.sendall(c.data_to_send())
    sent, out = 0, {"headers": {}, "trailers": {}}
    got = hashlib.sha256()
    length, done = 0, False
    while not done:
        while sent < n and c.local_flow_control_window(sid) > 0:
            k = min(n - sent, c.local_flow_control_window(sid), c.max_outbound_frame_size)
            last = sent + k == n and not trailers
            c.send_data(sid, body[sent:sent + k], end_stream=last)
            sent += k
            if sent == n and trailers:
                c.send_headers(sid, trailers, end_stream=True)
        s.sendall(c.data_to_send())
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.TrailersReceived):
                out["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.DataReceived):
                got.update(ev.data)
                length += len(ev.data)
                c.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
                if isinstance(ev, h2.events.StreamReset):
                    out["reset"] = int(ev.error_code)
        s.sendall(c.data_to_send())
    out["status"] = int(out["headers"].get(":status", "0"))
    out["body_sha256"], out["body_len"] = got.hexdigest(), length
    out["sent_sha256"] = hashlib.sha256(body).hexdigest()
    print(json.dumps(out))


main()
