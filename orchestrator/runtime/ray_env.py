"""Joining a Ray cluster, or starting the embedded one: loopback only, no usage stats.

Every socket of the embedded Ray listens on 127.0.0.1 (GCS, raylet, object manager, each worker's
core-worker server, the dashboard agent, the runtime-env agent). What decides it: Ray binds a
process's servers to 127.0.0.1 only when the node's IP is 127.0.0.1, and `ray.init` turns a
`_node_ip_address` of 127.0.0.1 into the machine's own address unless
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` is 0. Ray reads that variable once, when `ray` is first
imported (`ray._private.ray_constants.ENABLE_RAY_CLUSTER`), so setting it in the environment after
something imported ray (a test module, the CLI) changes nothing for this process: its children
bound 127.0.0.1 only by chance of import order. `_loopback()` sets the constant itself for the
`ray.init` call, and the environment for the processes Ray starts.
`tests/runtime/test_loopback.py` lists every listening socket of a running `dilaserve serve`.
"""

from __future__ import annotations

import contextlib
import os

NAMESPACE = "dilaserve"
LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = (LOOPBACK, "localhost", "::1")
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # with the constant set in _loopback(): 127.0.0.1
    "RAY_AUTH_MODE": "disabled",  # every port is on loopback (see docs/deploy.md)
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
        start_local(num_cpus, num_gpus)
        return True
    with _loopback(_joins_loopback(address)):
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    return False


def start_local(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Start the embedded Ray in this process, every process it starts on 127.0.0.1 only
    (`num_gpus`: fake GPUs, for placement tests)."""
    import ray

    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    with _loopback(True):
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 namespace=NAMESPACE, _node_ip_address=LOOPBACK,
                 configure_logging=False, log_to_driver=False)


@contextlib.contextmanager
def _loopback(on: bool):
    """Ray keeps 127.0.0.1 as this node's address (instead of resolving it to the machine's)
    inside the block, for this process and the processes it starts; restored after, so that a
    later connection to a real cluster resolves addresses as Ray does."""
    from ray._private import ray_constants

    if not on:
        yield
        return
    before_constant = ray_constants.ENABLE_RAY_CLUSTER
    before_env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before_constant
        if before_env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = before_env


def _joins_loopback(address: str) -> bool:
    """Whether `address` ("auto": the latest cluster started on this machine) is a cluster on
    loopback, such as the embedded default: joining it, this driver must keep 127.0.0.1 too."""
    from ray._private.services import get_ray_address_from_environment

    try:
        found = get_ray_address_from_environment(address, None) if address == "auto" else address
    except Exception:  # noqa: BLE001 - none or several found: ray.init says which
        return False
    host = (found or "").rpartition(":")[0].strip("[]")
    return host in LOOPBACK_HOSTS


def is_local_cluster() -> bool:
    """Every alive node on loopback: the embedded default."""
    import ray

    return all(n.get("NodeManagerAddress") == LOOPBACK for n in ray.nodes() if n.get("Alive"))
