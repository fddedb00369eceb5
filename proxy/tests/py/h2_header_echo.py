"""An h2c origin (raw `h2`, prior knowledge) that answers every request with 200 and a body
of the values of the request headers named on the command line, space-separated, in that
order (`-` for a header the request lacks; repeated headers joined with `,`). Request bodies
are read and discarded. Prints its port; runs until stdin closes.
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

NAMES = [n.lower().encode() for n in sys.argv[1:]]


def answer(c, sid, headers):
    values = []
    for name in NAMES:
        got = [v for (n, v) in headers if n == name]
        values.append(b",".join(got) if got else b"-")
    body = b" ".join(values)
    c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
    c.send_data(sid, body, end_stream=True)


def handle(sock):
    c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    heads = {}
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionError:
            return
        if not data:
            return
        try:
            events = c.receive_data(data)
        except h2.exceptions.ProtocolError:
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                heads[ev.stream_id] = ev.headers
                if ev.stream_ended is not None:
                    answer(c, ev.stream_id, heads.pop(ev.stream_id))
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_ended is not None and ev.stream_id in heads:
                    answer(c, ev.stream_id, heads.pop(ev.stream_id))
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in heads:
                    answer(c, ev.stream_id, heads.pop(ev.stream_id))
        out = c.data_to_send()
        if out:
            sock.sendall(out)


def main():
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(64)
    print(l.getsockname()[1], flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), l.close()), daemon=True).start()
    while True:
        try:
            s, _ = l.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(s,), daemon=True).start()


main()
