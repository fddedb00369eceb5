"""An h2c server (raw `h2`) that answers GET with `conn <n> stream <id>` and, after answering
PER_CONN requests on a connection, sends GOAWAY with the last answered stream id — any later
stream on that connection was never processed — then closes it once its answered streams are
flushed. Prints its port; runs until stdin closes. Stream bodies are empty; requests with
`/slow` wait 50 ms before answering (so several are in flight at the GOAWAY).
"""
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

PER_CONN = int(sys.argv[1]) if len(sys.argv) > 1 else 3
counter = [0]


def handle(sock, n):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    answered, last = 0, 0
    pending = []
    going_away = False
    sock.settimeout(0.01)
    while True:
        try:
            data = sock.recv(65536)
            if not data:
                return
            events = c.receive_data(data)
        except socket.timeout:
            events = []
        except (ConnectionError, h2.exceptions.ProtocolError):
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers).get(b":path", b"/")
                due = time.time() + (0.05 if path.startswith(b"/slow") else 0)
                pending.append((due, ev.stream_id))
        now = time.time()
        for due, sid in sorted(pending):
            if due > now or going_away:
                continue
            pending.remove((due, sid))
            body = b"conn %d stream %d" % (n, sid)
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
            c.send_data(sid, body, end_stream=True)
            answered += 1
            last = max(last, sid)
            if answered == PER_CONN:
                c.close_connection(last_stream_id=last)
                going_away = True
        out = c.data_to_send()
        if out:
            sock.sendall(out)
        if going_away:
            time.sleep(0.05)
            sock.close()
            return


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
        counter[0] += 1
        threading.Thread(target=handle, args=(s, counter[0]), daemon=True).start()


main()
