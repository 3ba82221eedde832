"""The controller actor re-plans on the profiles scaled to the replicas' machines (pure: the
actor's tick logic without Ray; the planner factory records the profiles it is given)."""

from __future__ import annotations

from dilaserve.core.locations import SHIPPED_PROFILES_DIR
from dilaserve.policy import default_policy
from dilaserve.policy.cluster import ClusterPolicy, ClusterSettings
from orchestrator.controller import Controller, Observation
from orchestrator.planning import FixedLayout, class_templates
from orchestrator.runtime.controller_actor import ControllerActor
from orchestrator.runtime.shape import cluster_shape
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView
from solver.profile_set import load_profile_set


class RecordingFactory:
    def __init__(self) -> None:
        self.given = []

    def __call__(self, cluster, profiles, policy, settings):
        self.given.append(profiles)
        return FixedLayout(1, 0.5, 0.9, 32)(cluster, profiles, policy, settings)


def actor_with(factory: RecordingFactory) -> ControllerActor:
    policy = default_policy()
    actor = ControllerActor(ClusterPolicy(policy, ClusterSettings(cpu_slots=2)),
                            planner_factory=factory)
    actor.profiles = load_profile_set(SHIPPED_PROFILES_DIR)
    actor.shape = cluster_shape(actor.cluster_policy.cluster, [{"Resources": {"CPU": 2}}],
                                actor.profiles.hardware)
    actor.controller = Controller(class_templates(policy), actor._planner(actor.cluster_policy),
                                  actor.shape.node_types, actor.shape.devices_per_node)
    actor.controller.cold_start(0.0)
    return actor


def observe(actor: ControllerActor, *scales: float, now: float = 1.0) -> None:
    config = ReplicaConfig(actor.shape.node_types[0], 1, 32, 0.5, 0.9)
    views = tuple(ReplicaView(i, config, ReplicaState.ACTIVE, 0, 0, 0, 4, 0.0, 1e-3, 1e-3, 4.0, s)
                  for i, s in enumerate(scales))
    actor._follow_machine_scales(Observation(now, (), views, (0,)))


def test_replicas_off_their_profile_rebuild_the_planner_on_scaled_profiles():
    factory = RecordingFactory()
    actor = actor_with(factory)
    hardware = actor.shape.nodes[0].hardware
    observe(actor, 1.0, 1.05)  # within 10%: the profile stands
    assert len(factory.given) == 1 and actor.machine_scales == {}

    # a second after the cold start's plan: the next plan is made on the scaled profiles
    observe(actor, 1.9, 2.1)
    assert actor.machine_scales == {hardware: 2.0}
    assert len(factory.given) == 2
    before, after = factory.given
    assert after.cost(hardware, 1).coef == tuple(2.0 * c for c in before.cost(hardware, 1).coef)
    assert not actor.controller._pending_reason  # no forced re-plan
    assert any("x2.00" in line and "next plan" in line for line in actor.lines)

    observe(actor, 2.1, 2.05, now=100.0)  # within 10% of the factor planned with: nothing
    assert len(factory.given) == 2

    # past min_interval_s since the last plan a change re-plans at once
    observe(actor, 3.0, 3.1, now=100.0)
    assert actor.machine_scales == {hardware: 3.05} and len(factory.given) == 3
    assert actor.controller._pending_reason.startswith("replicas step off their step-cost")
    actions = actor.controller.tick(Observation(101.0, (), (), (2,)))
    assert actor.controller.history[-1].reason.startswith("replicas step off")
    assert actions  # the re-plan's routes
