"""The worker's gRPC service: one model replica behind the `dilaserve.v1.Generate` API.

    GenerateRequest --servicer--> validation --RequestSpec--> loop (thread) --> scheduler + engine
          ^                                                   |
          +--- Partial / Final / status  <--convert--  events via each request's sink

| file | job |
|---|---|
| `servicer.py` | grpc.aio handlers: Generate (server streaming), Stats, Control; drain state |
| `validation.py` | GenerateRequest -> RequestSpec, each error naming its field (INVALID_ARGUMENT) |
| `loop.py` | the one thread that drives scheduler and engine; inbox, idle wait, failure recovery |
| `tracking.py` | per-request timings and thresholds; the counters Stats reports |
| `events.py` | the plain messages between handlers and the loop |
| `convert.py` | those messages <-> proto messages and status codes |
| `setup.py` | model + profiles + policy -> a `Worker` (engine, scheduler, online step cost) |
| `server.py` | the server with health and reflection; `serve` (signals), `ServerThread` |
| `tls.py` | server credentials from the policy's TLS files (router's, replicas' mutual TLS) |

The API and its deadline and error rules are documented in `proto/dilaserve.proto`; the policy
file in `dilaserve/policy` and `deploy/policies/worker-default.yaml`; clients in `worker/client`.
"""
