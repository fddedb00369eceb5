"""An h2c server (raw `h2`) for upstream keepalive tests. Each connection n answers GET with
`conn <n>`; `/pings` answers with the number of PING frames this connection has received
(h2 acknowledges them); `/mute` answers `muted` and then the connection goes silent — it is
kept open but never read or written again, like a peer behind a dead network path.
Prints its port; runs until stdin closes.
"""
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

counter = [0]


def handle(sock, n):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    pings = 0
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        try:
            events = c.receive_data(data)
        except h2.exceptions.ProtocolError:
            return
        mute = False
        for ev in events:
            if isinstance(ev, h2.events.PingReceived):
                pings += 1
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers).get(b":path", b"/")
                if path == b"/pings":
                    body = b"%d" % pings
                elif path == b"/mute":
                    body, mute = b"muted", True
                else:
                    body = b"conn %d" % n
                c.send_headers(ev.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                c.send_data(ev.stream_id, body, end_stream=True)
        out = c.data_to_send()
        if out:
            sock.sendall(out)
        if mute:
            while True:
                time.sleep(3600)


def main():
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0))
    l.listen(64)
    print(l.getsockname()[1], flush=True)

    def accept():
        while True:
            s, _ = l.accept()
            counter[0] += 1
            threading.Thread(target=handle, args=(s, counter[0]), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()
