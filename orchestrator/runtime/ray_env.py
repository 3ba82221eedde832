"""Joining a Ray cluster, or starting the embedded one (loopback only, no token auth, no usage
stats: see SETUP-NOTES; these must be in the environment before Ray starts its processes)."""

from __future__ import annotations

import os

NAMESPACE = "dilaserve"
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # makes every Ray process bind to 127.0.0.1
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray starts worker processes (replicas, router, controller) at nice 15: on the embedded
    # default they are the service, not background work, and must not yield to the neighbours
    "RAY_worker_niceness": "0",
}


def connect(address: str | None, num_cpus: int | None = None,
            num_gpus: int | None = None) -> bool:
    """Connect to the cluster at `address` ("auto" or HOST:PORT), or start a local Ray on
    127.0.0.1 when it is None. Returns True when it started a local Ray (the caller shuts it
    down). Idempotent: an initialised Ray is reused."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 namespace=NAMESPACE, _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=False)
        return True
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    return False


def is_local_cluster() -> bool:
    """Every alive node on loopback: the embedded default."""
    import ray

    return all(n.get("NodeManagerAddress") == "127.0.0.1" for n in ray.nodes() if n.get("Alive"))
