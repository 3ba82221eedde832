"""Who may call the cluster and over what: TLS files and tokens, as the policy names them.

The policy never holds a secret: a token is a `Secret`, a file or an environment variable, read
where it is used (the router, at start) and never printed; a certificate or key is a file path.
`cluster_schema` checks at validation that each file exists and each certificate matches its
key, naming the field; this module holds the checked values and reads them.

    router.tls       the router's gRPC and HTTP: its certificate and key; with client_ca_file,
                     clients must present a certificate that CA signed (mutual TLS)
    router.tokens    bearer tokens: `client` for Generate, Stats and the HTTP API; `admin` for
                     Control and everything else that changes the cluster (it may call all)
    replica_tls      router and controller <-> replicas: mutual TLS with one cluster certificate,
                     which every replica serves and the router and controller present
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

# the name replicas' certificate carries: the router dials replicas by IP and checks this name
REPLICA_SERVER_NAME = "dilaserve-replica"


@dataclass(frozen=True)
class Secret:
    """A token's place: a file (its content, whitespace stripped) or an environment variable."""

    file: str | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.env is None):
            raise ValueError("a secret is a file or an environment variable: give one")

    def __str__(self) -> str:  # where it is, never what it is
        return f"file {self.file}" if self.file is not None else f"env {self.env}"

    def read(self, field: str = "") -> str:
        """The token; a ValueError naming `field` (and never the value) when absent or empty."""
        prefix = f"{field}." if field else ""
        if self.file is not None:
            try:
                value = Path(self.file).read_text()
            except OSError as err:
                raise ValueError(f"{prefix}file: cannot read {self.file!r}: "
                                 f"{err.strerror or err}") from None
            where = f"{prefix}file: {self.file!r}"
        else:
            value = os.environ.get(self.env or "", "")
            where = f"{prefix}env: ${self.env}"
        value = value.strip()
        if not value:
            raise ValueError(f"{where} is empty or not set"
                             + ("" if self.file is not None else " in this process's environment"))
        if any(c.isspace() for c in value):
            raise ValueError(f"{where} holds whitespace inside the token")
        return value


@dataclass(frozen=True)
class Tokens:
    client: Secret  # Generate, Stats, the HTTP API
    admin: Secret  # Control: what changes the cluster; and whatever a client may call

    def read(self, field: str = "cluster.router.tokens") -> tuple[str, str]:
        """(client, admin), checked to differ."""
        client, admin = self.client.read(f"{field}.client"), self.admin.read(f"{field}.admin")
        if client == admin:
            raise ValueError(f"{field}.admin: the same token as {field}.client; the admin token "
                             f"must be its own")
        return client, admin


@dataclass(frozen=True)
class ServerTls:
    """A TLS server's certificate and key; with client_ca_file, clients must present a
    certificate that CA signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """For the HTTP API (gRPC reads the same files itself)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca_file)
        return context


@dataclass(frozen=True)
class ReplicaTls:
    """Mutual TLS between the router (and the controller) and the replicas: every replica
    serves cert_file, the router and the controller present it, and each side accepts only a
    peer whose certificate ca_file signed; the router checks the name `server_name`."""

    cert_file: str
    key_file: str
    ca_file: str
    server_name: str = REPLICA_SERVER_NAME


def check_pair(cert_file: str, key_file: str) -> None:
    """ValueError when the certificate is not PEM or the key is not its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as err:
        raise ValueError(f"is not the key of {cert_file!r} (or either is not PEM): "
                         f"{err.reason or err}") from None


def check_ca(ca_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(ca_file)
    except ssl.SSLError as err:
        raise ValueError(f"{ca_file!r} holds no PEM certificate: {err.reason or err}") from None


def check_handshake(tls: ReplicaTls) -> None:
    """A TLS handshake in memory, as a replica and the router would make it: the certificate
    must verify against ca_file under server_name, both ways (mutual TLS). ValueError saying
    what OpenSSL refused."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls.cert_file, tls.key_file)
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(tls.ca_file)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(tls.ca_file)
    client.load_cert_chain(tls.cert_file, tls.key_file)
    pipes = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
    ends = [client.wrap_bio(pipes[0], pipes[1], server_hostname=tls.server_name),
            server.wrap_bio(pipes[2], pipes[3], server_side=True)]
    done = [False, False]
    try:
        for _ in range(10):
            for i, end in enumerate(ends):
                if not done[i]:
                    try:
                        end.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
            pipes[2].write(pipes[1].read())
            pipes[0].write(pipes[3].read())
            if all(done):
                return
    except ssl.SSLCertVerificationError as err:
        raise ValueError(err.verify_message or str(err)) from None
    except ssl.SSLError as err:
        raise ValueError(err.reason or str(err)) from None
    raise ValueError("the TLS handshake did not finish")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
