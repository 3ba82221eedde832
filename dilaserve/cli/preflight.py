"""Checks `dilaserve serve` and the demo make before starting a cluster, and the one line an
error of a cluster that failed to start comes down to: an operator reads one line naming what to
fix, not a Ray traceback."""

from __future__ import annotations

import errno
import re
import socket

from dilaserve.policy.cluster import ClusterSettings

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_ports_free(cluster: ClusterSettings, flags: dict[str, str]) -> None:
    """Each fixed port the router will listen on is free on its host. `flags`: the command-line
    flag that set a field, for the message (else the policy field is named)."""
    ports = (("router_port", "cluster.router.port", cluster.router_port),
             ("router_http_port", "cluster.router.http_port", cluster.router_http_port),
             ("metrics_port", "cluster.metrics_port", cluster.metrics_port))
    for field, name, port in ports:
        if not port:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((cluster.router_host, port))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    continue  # not this host's address: the router's own bind will say
                raise ValueError(
                    f"{flags.get(field, name)}: {cluster.router_host}:{port} is in use (another "
                    f"dilaserve serve?); choose another port, or 0 for any free one") from None


def check_ray_address(address: str | None, timeout_s: float = 3.0) -> None:
    """HOST:PORT answers (Ray would otherwise retry for a minute and print warnings)."""
    if address is None or address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"--address {address}: no Ray head answers there ({reason}); start "
                         f"one with `ray start --head` or `ray up`, or leave --address out for "
                         f"the embedded default") from None


def one_line(err: BaseException) -> str:
    """The innermost cause of a failed start (a Ray task error wraps the actor's), as one line."""
    while True:
        cause = getattr(err, "cause", None) or err.__cause__
        if not isinstance(cause, BaseException) or cause is err:
            break
        err = cause
    lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"
