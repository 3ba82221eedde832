"""Turning a wanted set of replicas into actions against the running ones (pure).

Per slot (node type, TP degree), since only a slot change costs a reload:
1. running replicas (loading or active, not draining) whose configuration is wanted as is stay;
2. the rest of the slot's running replicas take the slot's remaining wanted configurations by a
   `SetThresholdRange` (a per-request decode setting: free);
3. running replicas left over are removed (drained); wanted configurations left over are added.

Rolling: at most `max_draining_gpus` GPUs drain at once (a replica that drains serves nothing new,
so draining everything at once would empty the cluster for a reload's length); removals of
replicas still loading come first (they serve nothing yet), then the ones on the emptiest nodes
(so that whole nodes free up for larger TP degrees), then the least busy; the last accepting
replica is not drained while a replacement is loading or being added. An add is issued only
where a node of its type has the free GPUs (best fit); otherwise it waits for a later tick, when
drains have ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from orchestrator.actions import Action, AddReplica, RemoveReplica, SetThresholdRange
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView


def reconcile(wanted: Sequence[ReplicaConfig], replicas: Sequence[ReplicaView],
              node_types: Sequence[str], free_gpus: Sequence[int],
              max_draining_gpus: int) -> list[Action]:
    """`wanted`: one entry per replica; `node_types[i]` / `free_gpus[i]`: node i's type and free
    GPUs now (draining replicas' GPUs are not free until they end)."""
    if len(node_types) != len(free_gpus):
        raise ValueError("node_types and free_gpus must have one entry per node")
    running = [v for v in replicas if v.state is not ReplicaState.DRAINING]
    draining = sum(v.config.tp for v in replicas if v.state is ReplicaState.DRAINING)
    used = Counter()
    for v in replicas:
        used[v.node] += v.config.tp
    want_by_slot: dict[tuple[str, int], list[ReplicaConfig]] = {}
    for cfg in wanted:
        want_by_slot.setdefault(cfg.slot, []).append(cfg)
    run_by_slot: dict[tuple[str, int], list[ReplicaView]] = {}
    for v in running:
        run_by_slot.setdefault(v.config.slot, []).append(v)

    actions: list[Action] = []
    surplus: list[ReplicaView] = []
    missing: list[ReplicaConfig] = []
    for slot in sorted(set(want_by_slot) | set(run_by_slot)):
        # keep the busiest, fullest-node replicas: they are the costliest to move
        views = sorted(run_by_slot.get(slot, []),
                       key=lambda v: (v.state is ReplicaState.LOADING, -used[v.node], -v.active,
                                      v.replica_id))
        left = Counter(want_by_slot.get(slot, []))
        unmatched = []
        for v in views:
            if left[v.config] > 0:
                left[v.config] -= 1
            else:
                unmatched.append(v)
        rest = sorted(left.elements(), key=lambda c: (c.threshold_min, c.threshold_max,
                                                      c.block_size))
        for v, cfg in zip(unmatched, rest):
            actions.append(SetThresholdRange(v.replica_id, cfg))
        surplus.extend(unmatched[len(rest):])
        missing.extend(rest[len(unmatched):])

    surplus.sort(key=lambda v: (v.state is not ReplicaState.LOADING, used[v.node], v.active,
                                v.replica_id))
    adds: list[Action] = []
    free = list(free_gpus)
    for cfg in sorted(missing, key=lambda c: -c.tp):  # largest first: they fragment worst
        fits = [i for i, (kind, f) in enumerate(zip(node_types, free))
                if kind == cfg.node_type and f >= cfg.tp]
        if not fits:
            continue
        node = min(fits, key=lambda i: (free[i], i))
        free[node] -= cfg.tp
        adds.append(AddReplica(cfg, node))
    budget = max_draining_gpus - draining
    # A replacement on its way (added now, or loading and kept) means the last accepting replica
    # can wait for it: draining it now would turn every request away until the replacement has
    # loaded. Without one (nothing fits until GPUs free up) it must go to make room.
    kept_loading = any(v.state is ReplicaState.LOADING for v in running if v not in surplus)
    coming = bool(adds) or kept_loading
    serving = sum(v.state is ReplicaState.ACTIVE for v in running)
    for v in surplus:
        if v.state is ReplicaState.LOADING:
            actions.append(RemoveReplica(v.replica_id, drain=True))
        elif v.config.tp <= budget and (serving > 1 or not coming):
            actions.append(RemoveReplica(v.replica_id, drain=True))
            budget -= v.config.tp
            serving -= 1
    return actions + adds
