"""`dilaserve secrets DIR`: the TLS certificates and tokens a cluster policy names, made here.

    ca.crt                      the CA that signed the two certificates below (its key is not
                                kept: run again to rotate everything); clients verify with it
    router.crt, router.key      the router's gRPC and HTTP (cluster.router.tls), valid for
                                127.0.0.1, localhost, every --host and dilaserve-router
    cluster.crt, cluster.key    router/controller <-> replicas, both ways (cluster.replica_tls),
                                named dilaserve-replica
    client.token, admin.token   cluster.router.tokens: client (Generate, Stats, the HTTP API)
                                and admin (Control too)
    ray.token                   Ray's own token auth on a `ray up` cluster (~/.ray/auth_token
                                on every node; deploy/cluster-*.yaml install it)
    client-ca.crt, client.crt, client.key
                                with --client-cert: a client certificate, for a router with
                                cluster.router.tls.client_ca_file: DIR/client-ca.crt (its own
                                CA: replicas, which trust ca.crt, never take it)

Keys and tokens are written 0600 in a 0700 directory; existing files are kept unless --force.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from dilaserve.policy.security import REPLICA_SERVER_NAME

ROUTER_SERVER_NAME = "dilaserve-router"
FILES = ("ca.crt", "router.crt", "router.key", "cluster.crt", "cluster.key", "client.token",
         "admin.token", "ray.token")
CLIENT_FILES = ("client-ca.crt", "client.crt", "client.key")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("secrets", help="make the TLS certificates and tokens a policy names",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="where to write them (e.g. deploy/secrets)")
    p.add_argument("--host", action="append", default=[],
                   help="a name or address clients reach the router by (the head's; repeat)")
    p.add_argument("--client-cert", action="store_true",
                   help="also a client certificate (client.crt, client.key) for mutual TLS")
    p.add_argument("--days", type=int, default=365, help="validity of the certificates")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.dir = args.dir.expanduser()
    if args.days < 1:
        raise ValueError(f"--days: must be >= 1, got {args.days}")
    names = FILES + (CLIENT_FILES if args.client_cert else ())
    there = [n for n in names if (args.dir / n).exists()]
    if there and not args.force:
        raise ValueError(f"{args.dir}: {', '.join(there)} exist (--force replaces them)")
    write_secrets(args.dir, args.host, args.days, args.client_cert)
    print(f"dilaserve secrets: wrote {', '.join(names)} to {args.dir}")
    print(f"  router: {', '.join(_router_names(args.host))}; replicas: {REPLICA_SERVER_NAME}")
    print("  clients: --tls-ca ca.crt --token-file client.token (admin.token for Control)")
    return 0


def write_secrets(directory: Path, hosts: list[str] = (), days: int = 365,
                  client_cert: bool = False) -> None:
    """Every file of the module docstring into `directory` (created 0700)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    cas = {"ca": _authority("dilaserve CA", directory / "ca.crt", days)}
    leaves = [("router", _router_names(hosts), True, False, "ca"),
              ("cluster", [REPLICA_SERVER_NAME], True, True, "ca")]
    if client_cert:
        cas["client-ca"] = _authority("dilaserve client CA", directory / "client-ca.crt", days)
        leaves.append(("client", ["dilaserve-client"], False, True, "client-ca"))
    for name, sans, server, client, signer in leaves:
        ca, ca_key = cas[signer]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"dilaserve {name}", key, ca_key, ca, days, sans=sans,
                            server=server, client=client)
        _write(directory / f"{name}.crt", _pem(cert), 0o644)
        _write(directory / f"{name}.key", _key_pem(key), 0o600)
    for name in ("client", "admin", "ray"):
        _write(directory / f"{name}.token", (secrets.token_hex(32) + "\n").encode(), 0o600)


def _authority(name: str, path: Path, days: int):
    """A CA, its certificate written to `path`; its key stays in memory only."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, key, None, days, is_ca=True)
    _write(path, _pem(cert), 0o644)
    return cert, key


def _router_names(hosts) -> list[str]:
    """Loopback, the hosts given, and a fixed name a client can ask to check
    (`--tls-server-name dilaserve-router`) when it dials an address the certificate lacks."""
    return list(dict.fromkeys(["127.0.0.1", "localhost", *hosts, ROUTER_SERVER_NAME]))


def _certificate(common_name: str, key, signer_key, issuer, days: int, *, is_ca: bool = False,
                 sans: list[str] = (), server: bool = False, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None),
                              critical=True))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [_san(name) for name in sans]), critical=False)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
            ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(signer_key, hashes.SHA256())


def _san(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    """Created with `mode` from the start (a key is never readable by others, even briefly)."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
