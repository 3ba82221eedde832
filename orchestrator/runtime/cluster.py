"""Starting and stopping a dilaserve cluster from a driver: `dilaserve serve`, the demo, tests.

    handle = start_cluster(cluster_policy, address=None)   # None: the embedded local Ray
    handle.wait_ready(); ... handle.target, handle.http_url ...; handle.stop()

On a cluster (`address` given) the controller actor is detached and named, so it outlives a
driver that dies, and a restarted driver (`dilaserve serve` again) takes the running cluster over
instead of starting a second one (`ClusterHandle.attached`); locally it lives with the driver's
Ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dilaserve.policy.cluster import ClusterPolicy
from orchestrator.runtime.controller_actor import CONTROLLER_NAME, ControllerActor, this_node
from orchestrator.runtime.ray_env import NAMESPACE, connect


@dataclass
class ClusterHandle:
    controller: object  # the controller's actor handle
    target: str  # where the router listens
    started_ray: bool
    attached: bool = False  # found running (started by an earlier driver), not started here
    http_url: str = ""  # the router's OpenAI-compatible API ("" when off)

    def wait_ready(self, timeout_s: float = 180.0) -> bool:
        import ray

        return ray.get(self.controller.wait_ready.remote(timeout_s))

    def summary(self) -> dict:
        import ray

        return ray.get(self.controller.summary.remote())

    def events(self, since: int = 0) -> tuple[int, list[str]]:
        """The controller's log lines after the first `since` (plans, replicas, reloads)."""
        import ray

        return ray.get(self.controller.events.remote(since))

    def stop(self, grace_s: float = 5.0) -> None:
        import ray

        try:
            ray.get(self.controller.stop.remote(grace_s), timeout=grace_s + 120)
            ray.kill(self.controller)
        finally:
            if self.started_ray:
                ray.shutdown()


def start_cluster(cluster_policy: ClusterPolicy, address: str | None = None,
                  policy_path: str | None = None, planner_factory=None,
                  num_gpus: int | None = None,
                  overrides: dict | None = None) -> ClusterHandle:
    """`overrides`: cluster settings given on the command line (`serve --port/--model`), which
    `cluster_policy` already carries and every reloaded policy file keeps."""
    import ray

    settings = cluster_policy.cluster
    local_cpus = max(os.cpu_count() or 1, settings.cpu_slots * settings.cpu_threads)
    started = connect(address, num_cpus=local_cpus if address is None else None,
                      num_gpus=num_gpus)
    controller = None
    try:
        running = find_controller()
        if running is not None:  # a restarted driver: take the running cluster over
            target = ray.get(running.router_target.remote())
            if target:
                return ClusterHandle(running, target, started, attached=True,
                                     http_url=ray.get(running.router_http_url.remote()))
            ray.kill(running)  # a controller that never started serving: replace it
        # on the driver's node: the policy file it watches and the router address it reports
        # are that node's (on `ray up`, the head node's)
        options = dict(name=CONTROLLER_NAME, namespace=NAMESPACE, num_cpus=0, max_concurrency=8,
                       scheduling_strategy=this_node())
        if address is not None:
            options["lifetime"] = "detached"
        # the embedded default keeps everything on loopback; on a cluster replicas bind their IP
        host = "127.0.0.1" if address is None else None
        controller = ray.remote(ControllerActor).options(**options).remote(
            cluster_policy, policy_path, planner_factory, host, overrides)
        target = ray.get(controller.start.remote())
        http_url = ray.get(controller.router_http_url.remote())
    except BaseException:
        if controller is not None:
            ray.kill(controller)
        if started:
            ray.shutdown()
        raise
    return ClusterHandle(controller, target, started, http_url=http_url)


def find_controller():
    """The running controller's handle, or None."""
    import ray

    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        return None
