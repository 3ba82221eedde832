"""Quality-aware placement: how a cluster is split into dLLM replicas and how load is routed.

`solver.solve.solve(cluster, workload, profiles, policy, current=None) -> Plan` is the entry
point; see docs/solver.md for the model. Importing this package imports none of its modules
(PuLP loads only with `solver.solve`).
"""
