"""One placement group per replica: STRICT_PACK, one bundle per device of its TP degree (a GPU,
or `cpu_threads` CPUs on the embedded default), pinned to the controller's chosen node when the
shape knows how. Placement is always awaited with a timeout, and a group that cannot be placed
is removed and reported with what it asked for and what the cluster has free."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.runtime.shape import GPU, Node

PIN_AMOUNT = 0.001  # of a node's `node:IP` resource: enough to pin, never the limit


class PlacementError(RuntimeError):
    pass


@dataclass(frozen=True)
class ReplicaResources:
    bundles: tuple[dict[str, float], ...]
    actor_options: dict  # resources the rank actors take from their bundle

    def describe(self) -> str:
        return f"{len(self.bundles)} x {self.bundles[0]}"


def replica_resources(tp: int, device: str, cpu_threads: int, node: Node | None) -> \
        ReplicaResources:
    bundle: dict[str, float] = {"GPU": 1.0} if device == GPU else {"CPU": float(cpu_threads)}
    options = {"num_gpus": 1, "num_cpus": 0} if device == GPU else {"num_cpus": cpu_threads}
    if node is not None and node.pin:
        bundle[node.pin] = PIN_AMOUNT
    return ReplicaResources(tuple(dict(bundle) for _ in range(tp)), options)


def reserve(resources: ReplicaResources, name: str, timeout_s: float):
    """A ready placement group, or PlacementError (the group is removed, nothing is leaked)."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group(list(resources.bundles), strategy="STRICT_PACK", name=name)
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        free = ray.available_resources()
        raise PlacementError(
            f"{name}: could not place {resources.describe()} within {timeout_s:g} s "
            f"(free now: GPU {free.get('GPU', 0):g}, CPU {free.get('CPU', 0):g})")
    return group


def release(group) -> None:
    from ray.util.placement_group import remove_placement_group

    try:
        remove_placement_group(group)
    except Exception:  # noqa: BLE001 - already removed (e.g. its node died): nothing to free
        pass
