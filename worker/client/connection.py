"""How a client reaches a Generate service: plaintext or TLS (with a client certificate for
mutual TLS), and the bearer token every call carries (`authorization: Bearer TOKEN`).

The router's links to its replicas and the controller's Control calls use the same code, with
the cluster certificate of the policy's `cluster.replica_tls` (`for_replicas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from dilaserve.policy.security import ReplicaTls

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClientTls:
    ca_file: str | None = None  # the CA the server's certificate must chain to; None: system's
    cert_file: str | None = None  # a client certificate (mutual TLS), with key_file
    key_file: str | None = None
    server_name: str | None = None  # the name to check, when not the target's host

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both its file and its key")

    @classmethod
    def for_replicas(cls, tls: ReplicaTls) -> ClientTls:
        return cls(tls.ca_file, tls.cert_file, tls.key_file, tls.server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file), private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file))

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def open_channel(target: str, tls: ClientTls | None = None,
                 options: Sequence[tuple[str, object]] = (), aio: bool = False):
    """A channel to `target`, over TLS when `tls` is given (grpc.aio's when `aio`)."""
    kind = grpc.aio if aio else grpc
    if tls is None:
        return kind.insecure_channel(target, options=list(options))
    return kind.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def auth_metadata(token: str | None) -> Metadata:
    """What each call sends: the token as a bearer credential (nothing without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None
