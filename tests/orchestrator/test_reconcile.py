from __future__ import annotations

from orchestrator.actions import AddReplica, RemoveReplica, SetThresholdRange
from orchestrator.reconcile import reconcile
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView

TP1_HI = ReplicaConfig("n", 1, 32, 0.9, 0.9)
TP1_LO = ReplicaConfig("n", 1, 32, 0.7, 0.9)
TP2 = ReplicaConfig("n", 2, 32, 0.8, 0.9)
TP4 = ReplicaConfig("n", 4, 32, 0.7, 0.9)


def view(rid: int, config: ReplicaConfig, node: int, *, active: int = 0,
         state: ReplicaState = ReplicaState.ACTIVE) -> ReplicaView:
    return ReplicaView(rid, config, state, node, active, 0, 8, 0.0, 0.1, 0.01, 3.0)


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_nothing_to_do_when_running_matches():
    running = [view(0, TP1_HI, 0), view(1, TP1_LO, 0)]
    assert reconcile([TP1_LO, TP1_HI], running, ["n"], [6], 8) == []


def test_threshold_changes_are_free_and_come_first():
    running = [view(0, TP1_HI, 0), view(1, TP1_HI, 0)]
    actions = reconcile([TP1_HI, TP1_LO], running, ["n"], [6], 8)
    assert actions == [SetThresholdRange(1, TP1_LO)] or actions == [SetThresholdRange(0, TP1_LO)]


def test_adds_go_best_fit_and_largest_first():
    actions = reconcile([TP4, TP2, TP1_HI], [], ["n", "n", "other"], [8, 4, 8], 8)
    assert actions == [AddReplica(TP4, 1), AddReplica(TP2, 0), AddReplica(TP1_HI, 0)]


def test_add_waits_without_free_gpus_and_surplus_drains_within_budget():
    running = [view(i, TP1_HI, i // 4, active=i) for i in range(8)]
    actions = reconcile([TP4, *[TP1_HI] * 4], running, ["n", "n"], [0, 0], 2)
    removes = [a for a in actions if isinstance(a, RemoveReplica)]
    assert len(removes) == 2  # budget: 2 GPUs draining
    assert all(a.drain for a in removes)
    assert not any(isinstance(a, AddReplica) for a in actions)  # no node has 4 free GPUs yet
    # the draining replicas count against the budget on the next tick
    draining = [view(r.replica_id, TP1_HI, 0, state=ReplicaState.DRAINING) for r in removes]
    rest = [v for v in running if v.replica_id not in {r.replica_id for r in removes}]
    assert not any(isinstance(a, RemoveReplica)
                   for a in reconcile([TP4, *[TP1_HI] * 4], rest + draining, ["n", "n"],
                                      [0, 0], 2))


def test_surplus_removal_prefers_loading_then_emptiest_node_then_idle():
    running = [view(0, TP1_HI, 0, active=5), view(1, TP1_HI, 0, active=0),
               view(2, TP1_HI, 1, active=9), view(3, TP1_HI, 1, state=ReplicaState.LOADING)]
    used = {0: 2, 1: 2}
    assert used  # both nodes hold 2 GPUs
    actions = reconcile([TP1_HI], running, ["n", "n"], [6, 6], 1)
    removed = [a.replica_id for a in actions if isinstance(a, RemoveReplica)]
    # the loading one costs no capacity; then one more within the 1-GPU budget
    assert removed[0] == 3 and len(removed) == 2


def test_the_last_accepting_replica_keeps_serving_until_a_replacement_is_up():
    # 2 x TP1 -> 2 x TP2 on 4 devices with room to drain everything at once
    running = [view(0, TP1_HI, 0), view(1, TP1_HI, 0)]
    actions = reconcile([TP2, TP2], running, ["n"], [2], 4)
    removed = [a.replica_id for a in actions if isinstance(a, RemoveReplica)]
    assert len(removed) == 1
    assert [a.config for a in actions if isinstance(a, AddReplica)] == [TP2]
    # the new TP2 loads: the remaining TP1 still serves
    left = 1 - removed[0]
    loading = [view(left, TP1_HI, 0), view(2, TP2, 0, state=ReplicaState.LOADING)]
    assert not [a for a in reconcile([TP2, TP2], loading, ["n"], [0], 4)
                if isinstance(a, RemoveReplica)]
    # once it serves, the last TP1 goes
    up = [view(left, TP1_HI, 0), view(2, TP2, 0)]
    assert [a for a in reconcile([TP2, TP2], up, ["n"], [0], 4)
            if isinstance(a, RemoveReplica)] == [RemoveReplica(left, drain=True)]


def test_the_last_replica_goes_when_its_replacement_needs_its_gpus():
    running = [view(0, TP4, 0)]
    assert reconcile([TP1_HI] * 4, running, ["n"], [0], 4) == [RemoveReplica(0, drain=True)]


def test_an_empty_plan_removes_every_replica():
    running = [view(0, TP1_HI, 0), view(1, TP1_HI, 0)]
    assert kinds(reconcile([], running, ["n"], [6], 8)) == ["RemoveReplica", "RemoveReplica"]
