"""The live cluster: the pure decision logic (`orchestrator.controller`, `orchestrator.router`,
`orchestrator.planning`) wrapped in Ray actors and the gRPC router.

- `ray_env`: joining a Ray cluster, or starting the embedded one on 127.0.0.1;
- `shape`: the cluster's nodes and devices, as Ray reports them or the policy states them;
- `placement`: one placement group per replica (STRICT_PACK, a bundle per device);
- `replica_actor`: a Ray actor that runs one worker gRPC service (rank 0 of its replica);
- `fleet`: the running replicas, and executing the controller's actions on them;
- `controller_actor`: the named controller actor that owns the plan, the fleet and the router;
- `cluster`: starting and stopping the whole thing (`dilaserve serve`, the demo, tests).
"""
