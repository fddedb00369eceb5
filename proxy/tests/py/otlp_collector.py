"""A minimal OTLP/HTTP trace collector for span-export tests, on 127.0.0.1:0 (or the port
given as the first argument, for bench-harness/peers/shardcar-http-otlp.yaml).

Prints its port on one line, then one JSON line per span received:
{"trace_id", "span_id", "parent_span_id" (hex), "name", "kind", "status", "service",
 "start", "end", "attributes": {key: value}, "content_type", "path"}.
Each POST is decoded with opentelemetry-proto (ExportTraceServiceRequest) and answered 200
with an empty ExportTraceServiceResponse; a body that does not decode gets 400 and a line
{"error": ...}. Exits when stdin closes.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def value(v):
    d = MessageToDict(v)
    return next(iter(d.values()), None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        req = trace_service_pb2.ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - report any decode failure to the test
            emit({"error": str(e)})
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        for rs in req.resource_spans:
            service = None
            for a in rs.resource.attributes:
                if a.key == "service.name":
                    service = a.value.string_value
            # `xds-protos` ships an older copy of these protos into the same package path
            # (field 2 named `instrumentation_library_spans`, same wire format); whichever pip
            # installed last wins, so read either.
            scopes = rs.scope_spans if hasattr(rs, "scope_spans") else rs.instrumentation_library_spans
            for ss in scopes:
                scope = ss.scope if hasattr(ss, "scope") else ss.instrumentation_library
                for s in ss.spans:
                    emit({
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "status": s.status.code,
                        "service": service,
                        "scope": scope.name,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": {a.key: value(a.value) for a in s.attributes},
                        "content_type": self.headers.get("content-type"),
                        "path": self.path,
                    })
        resp = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
for _ in sys.stdin:
    pass
server.shutdown()
