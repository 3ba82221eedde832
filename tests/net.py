"""What the tests that start servers share: a free loopback port, and a call's gRPC status."""

from __future__ import annotations

import socket
from collections.abc import Callable

import grpc

from worker.client import WorkerError


def free_port() -> int:
    """A loopback port free now (the kernel's pick), for a server started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_of(call: Callable[[], object]) -> grpc.StatusCode | None:
    """The gRPC status `call` fails with (through the client's WorkerError); None if it works."""
    try:
        call()
    except WorkerError as err:
        return err.code
    return None
