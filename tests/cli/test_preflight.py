"""One-line errors before a cluster starts: a port in use, a Ray address nothing answers at,
and the cause of a failed start without Ray's traceback."""

from __future__ import annotations

import socket

import pytest

from dilaserve.cli.preflight import check_ports_free, check_ray_address, one_line
from dilaserve.policy.cluster import ClusterSettings


def test_a_port_in_use_is_named_with_its_flag():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"^--port: 127\.0\.0\.1:{port} is in use"):
            check_ports_free(ClusterSettings(router_port=port), {"router_port": "--port"})
        with pytest.raises(ValueError, match=r"^cluster.metrics_port: "):
            check_ports_free(ClusterSettings(router_port=0, metrics_port=port), {})
    check_ports_free(ClusterSettings(router_port=0), {})  # any free port: nothing to check


def test_a_ray_address_nothing_answers_at():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
    with pytest.raises(ValueError, match=rf"--address 127.0.0.1:{port}: no Ray head answers"):
        check_ray_address(f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="expected auto or HOST:PORT"):
        check_ray_address("nowhere")
    check_ray_address(None)
    check_ray_address("auto")


def test_one_line_is_the_innermost_cause_without_colours():
    class TaskError(Exception):
        def __init__(self, cause):
            super().__init__("\x1b[31mray::RouterActor.start()\x1b[39m\n  File ...\nwrapped")
            self.cause = cause

    err = TaskError(RuntimeError("Traceback (most recent call last):\n  ...\nFailed to bind "
                                 "to address 127.0.0.1:50051"))
    assert one_line(err) == "RuntimeError: Failed to bind to address 127.0.0.1:50051"
