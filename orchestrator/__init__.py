"""The cluster's pure decision logic (no Ray, no gRPC, no torch), one module per job:

- `types`: replica configurations and views, routes, the controller's actions;
- `router`: which replica takes a request (deadline-aware, least-loaded, round-robin);
- `load`: arrival-rate estimates per class;
- `controller`: when to re-plan, and turning a plan into actions (`Controller.tick`);
- `planning`: the planners the controller calls (the solver's candidates, fixed layouts);
- `reconcile`: running replicas vs the plan -> add / remove / change thresholds;
- `step_model`: a replica's step time as the router predicts it.

The simulator (`sim/`) drives these classes with a modelled clock; `orchestrator.service` (the
gRPC router) and `orchestrator.runtime` (Ray actors) run the very same classes live. Nothing here
imports those subpackages, and importing this package imports none of its modules.
"""
