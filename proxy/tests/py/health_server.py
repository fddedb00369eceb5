"""A gRPC health v1 server (grpcio-health-checking) on 127.0.0.1:0 for health-check tests.
Prints its port on one line; each stdin line (SERVING, NOT_SERVING) sets the status of the
whole server (service ""); exits when stdin closes.
"""
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
servicer = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
print(port, flush=True)
for line in sys.stdin:
    status = line.strip()
    if status:
        servicer.set("", getattr(health_pb2.HealthCheckResponse, status))
server.stop(0)
