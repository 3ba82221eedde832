"""Server credentials from the policy's TLS files (`dilaserve.policy.security`): the router's
(`cluster.router.tls`) and the replicas' (`cluster.replica_tls`, where a client must present a
certificate the cluster's CA signed)."""

from __future__ import annotations

from pathlib import Path

import grpc

from dilaserve.policy.security import ReplicaTls, ServerTls


def server_credentials(tls: ServerTls | ReplicaTls) -> grpc.ServerCredentials:
    """TLS with the certificate and key; a client must present a certificate signed by the
    CA when there is one (a router's client_ca_file; always for replicas)."""
    ca_file = tls.ca_file if isinstance(tls, ReplicaTls) else tls.client_ca_file
    pair = (Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())
    return grpc.ssl_server_credentials(
        [pair], root_certificates=Path(ca_file).read_bytes() if ca_file else None,
        require_client_auth=ca_file is not None)
