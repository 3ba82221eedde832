"""The router's gRPC service: the cluster's front door (see `router_server.py`).

| file | job |
|---|---|
| `router_server.py` | `RouterServer`: its thread, health, reflection, Stats polls, controller API |
| `servicer.py` | grpc.aio handlers: Generate (proxied), Stats (the cluster), Control (by id) |
| `http_api.py` | the OpenAI-compatible HTTP API (aiohttp), through the servicer's own code |
| `openai_schema.py` | its request bodies (pydantic) and the `GenerateRequest` each becomes |
| `openai_render.py` | its responses, streamed chunks and error JSON |
| `proxy.py` | one Generate call: route, offer in order, stream back, restart if a replica fails |
| `request.py` | a request checked as the worker checks it, its SLO deadline, its `RouteRequest` |
| `replica_pool.py` | `ReplicaEndpoint`; the replica set, polled Stats, the router's in-flight |
| `views.py` | what the router knows of a replica -> the `ReplicaView` the pure router reads |
| `channels.py` | one gRPC channel per replica target (mutual TLS with `cluster.replica_tls`) |
| `auth.py` | bearer tokens: who may call what, checked before any handler (gRPC and HTTP) |
| `bookkeeping.py` | how requests ended, per class (attainment as the router saw it) |
| `stats.py` | the cluster's `StatsReply` and the plain-data summary for `dilaserve status` |
| `metrics.py` | Prometheus metrics (dilaserve_router_*) on their own registry |
| `standalone.py` | a router over a fixed list of workers, without Ray (benchmarks, manual use) |
| `overhead.py` | the closed- and open-loop load of `dilaserve bench-router` |

Rules and load model: `docs/router.md`; the API's rules: `proto/dilaserve.proto`.
"""

from orchestrator.service.replica_pool import ReplicaEndpoint, ReplicaPool
from orchestrator.service.router_server import RouterServer
from orchestrator.service.views import replica_view

__all__ = ["ReplicaEndpoint", "ReplicaPool", "RouterServer", "replica_view"]
