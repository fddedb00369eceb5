"""A test xDS control plane: ADS (SotW and Delta) with grpcio and the `xds-protos` package.

Prints {"event": "listening", "port": N} first, then one JSON event per line:
  node     the node of a new stream (id, cluster, metadata)
  ack/nack a request answering one of our responses: type, version, nonce, error,
           t (when it arrived) and pushed (when that response was sent), both time.time()
  stream   a stream opened or closed (api sotw|delta; on open, with --cert, the client's
           certificate as peer_cert (PEM) and its SANs as peer_sans)
  sent     a Delta response: type, nonce, names (changed resources), removed
Commands, one JSON object per stdin line (resources in Envoy's canonical JSON):
  {"op": "set", "type": "CDS", "resources": [...]}   replace the whole set of a type
  {"op": "update", "type": "EDS", "resources": [...]} add or replace some
  {"op": "remove", "type": "CDS", "names": [...]}
Each change is pushed at once to every stream subscribed to the type.
With --cert/--key/--ca it serves TLS and requires a client certificate signed by --ca.
"""
import argparse
import hashlib
import json
import queue
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2, json_format
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401 (Any types)
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

TYPES = {
    "CDS": ("type.googleapis.com/envoy.config.cluster.v3.Cluster", cluster_pb2.Cluster, lambda m: m.name),
    "EDS": ("type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            endpoint_pb2.ClusterLoadAssignment, lambda m: m.cluster_name),
    "LDS": ("type.googleapis.com/envoy.config.listener.v3.Listener", listener_pb2.Listener, lambda m: m.name),
    "RDS": ("type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            route_pb2.RouteConfiguration, lambda m: m.name),
    "SDS": ("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            secret_pb2.Secret, lambda m: m.name),
}
BY_URL = {v[0]: k for k, v in TYPES.items()}
WILDCARD = {"CDS", "LDS"}
LOCK = threading.Lock()
OUT = threading.Lock()


def emit(**ev):
    with OUT:
        sys.stdout.write(json.dumps(ev) + "\n")
        sys.stdout.flush()


class State:
    def __init__(self):
        self.resources = {k: {} for k in TYPES}   # type -> name -> Any
        self.versions = {k: 0 for k in TYPES}
        self.nonce = 0
        self.streams = []

    def next_nonce(self):
        self.nonce += 1
        return str(self.nonce)


STATE = State()


def pack(kind, obj):
    url, cls, name_of = TYPES[kind]
    msg = json_format.ParseDict(obj, cls())
    any_ = any_pb2.Any()
    any_.Pack(msg)
    return name_of(msg), any_


def rversion(any_):
    return hashlib.sha1(any_.value).hexdigest()[:12]


class Stream:
    def __init__(self, api):
        self.api = api
        self.q = queue.Queue()
        self.names = {}        # type -> set of names (SotW/Delta subscriptions); absent = not subscribed
        self.sent = {}         # nonce -> (type, version, pushed time)
        self.delta_sent = {}   # type -> name -> version (Delta)

    # --- SotW ---
    def sotw_push(self, kind):
        if kind not in self.names:
            return
        res = STATE.resources[kind]
        if kind in WILDCARD:
            items = list(res.values())
        else:
            items = [res[n] for n in sorted(self.names[kind]) if n in res]
        nonce = STATE.next_nonce()
        version = str(STATE.versions[kind])
        resp = discovery_pb2.DiscoveryResponse(version_info=version, type_url=TYPES[kind][0],
                                               nonce=nonce, resources=items)
        self.sent[nonce] = (kind, version, time.time())
        self.q.put(resp)

    # --- Delta ---
    def delta_push(self, kind):
        if kind not in self.names:
            return
        res = STATE.resources[kind]
        if kind in WILDCARD and not self.names[kind]:
            scope = set(res)
        else:
            scope = set(self.names[kind]) & set(res)
        sent = self.delta_sent.setdefault(kind, {})
        changed = [discovery_pb2.Resource(name=n, version=rversion(res[n]), resource=res[n])
                   for n in sorted(scope) if sent.get(n) != rversion(res[n])]
        removed = [n for n in sorted(sent) if n not in res or n not in scope]
        if not changed and not removed:
            return
        for r in changed:
            sent[r.name] = r.version
        for n in removed:
            sent.pop(n, None)
        nonce = STATE.next_nonce()
        version = str(STATE.versions[kind])
        resp = discovery_pb2.DeltaDiscoveryResponse(system_version_info=version, type_url=TYPES[kind][0],
                                                    nonce=nonce, resources=changed, removed_resources=removed)
        self.sent[nonce] = (kind, version, time.time())
        emit(event="sent", api="delta", type=kind, nonce=nonce, names=[r.name for r in changed],
             removed=removed)
        self.q.put(resp)

    def push(self, kind):
        (self.sotw_push if self.api == "sotw" else self.delta_push)(kind)


def answered(stream, kind, nonce, error):
    sent = stream.sent.get(nonce)
    if sent is None:
        return
    emit(event="nack" if error else "ack", type=kind, version=sent[1], nonce=nonce,
         error=error or None, t=time.time(), pushed=sent[2], api=stream.api)


def peer_of(context):
    """The client's TLS certificate (PEM) and SANs; empty over plaintext."""
    auth = context.auth_context() or {}
    pem = b"".join(auth.get("x509_pem_cert", [])).decode()
    sans = [v.decode() for v in auth.get("x509_subject_alternative_name", [])]
    return {"peer_cert": pem, "peer_sans": sans}


def serve(stream, request_iterator, handle, peer):
    emit(event="stream", api=stream.api, open=True, **peer)
    with LOCK:
        STATE.streams.append(stream)

    def reader():
        try:
            for req in request_iterator:
                with LOCK:
                    handle(stream, req)
        except grpc.RpcError:
            pass
        stream.q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    try:
        while True:
            item = stream.q.get()
            if item is None:
                break
            yield item
    finally:
        with LOCK:
            if stream in STATE.streams:
                STATE.streams.remove(stream)
        emit(event="stream", api=stream.api, open=False)


def node_event(stream, node):
    if node.id and not getattr(stream, "node_seen", False):
        stream.node_seen = True
        emit(event="node", id=node.id, cluster=node.cluster,
             metadata=json_format.MessageToDict(node.metadata), user_agent=node.user_agent_name)


def handle_sotw(stream, req):
    kind = BY_URL.get(req.type_url)
    if kind is None:
        return
    node_event(stream, req.node)
    error = req.error_detail.message if req.HasField("error_detail") else ""
    if req.response_nonce:
        answered(stream, kind, req.response_nonce, error)
    names = set(req.resource_names)
    first = kind not in stream.names
    changed = stream.names.get(kind) != names
    stream.names[kind] = names
    if first or (changed and not req.response_nonce) or (changed and kind not in WILDCARD):
        stream.sotw_push(kind)


def handle_delta(stream, req):
    kind = BY_URL.get(req.type_url)
    if kind is None:
        return
    node_event(stream, req.node)
    error = req.error_detail.message if req.HasField("error_detail") else ""
    if req.response_nonce:
        answered(stream, kind, req.response_nonce, error)
    first = kind not in stream.names
    subs = stream.names.setdefault(kind, set())
    if first:
        stream.delta_sent[kind] = dict(req.initial_resource_versions)
    subs |= set(req.resource_names_subscribe)
    subs -= set(req.resource_names_unsubscribe)
    if first or req.resource_names_subscribe or req.resource_names_unsubscribe:
        stream.delta_push(kind)


class Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def StreamAggregatedResources(self, request_iterator, context):
        return serve(Stream("sotw"), request_iterator, handle_sotw, peer_of(context))

    def DeltaAggregatedResources(self, request_iterator, context):
        return serve(Stream("delta"), request_iterator, handle_delta, peer_of(context))


def command(cmd):
    op = cmd["op"]
    kind = cmd.get("type")
    with LOCK:
        res = STATE.resources[kind]
        if op == "set":
            res.clear()
        if op in ("set", "update"):
            for obj in cmd["resources"]:
                name, any_ = pack(kind, obj)
                res[name] = any_
        elif op == "remove":
            for n in cmd["names"]:
                res.pop(n, None)
        STATE.versions[kind] += 1
        for s in STATE.streams:
            s.push(kind)
    emit(event="pushed", type=kind, version=str(STATE.versions[kind]), t=time.time())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    a = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_send_message_length", 64 << 20),
                                  ("grpc.so_reuseport", 0)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Ads(), server)
    if a.cert:
        creds = grpc.ssl_server_credentials([(open(a.key, "rb").read(), open(a.cert, "rb").read())],
                                            root_certificates=open(a.ca, "rb").read(),
                                            require_client_auth=True)
        port = server.add_secure_port(f"127.0.0.1:{a.port}", creds)
    else:
        port = server.add_insecure_port(f"127.0.0.1:{a.port}")
    server.start()
    emit(event="listening", port=port)
    for line in sys.stdin:
        line = line.strip()
        if line:
            try:
                command(json.loads(line))
            except Exception as e:  # a test's mistake: say so, keep serving
                emit(event="error", error=repr(e))
    server.stop(0)


if __name__ == "__main__":
    main()
