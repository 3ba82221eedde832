"""The flags with which a command reaches a router (or a worker) that takes TLS and tokens:

    --tls-ca FILE               TLS; the server's certificate must chain to this CA
                                (`dilaserve secrets` writes ca.crt)
    --tls                       TLS with the system's CAs
    --tls-cert FILE --tls-key FILE    a client certificate (a router with client_ca_file)
    --tls-server-name NAME      the name to check, when the target's host is not in the certificate
    --token-file FILE           the bearer token; default: $DILASERVE_TOKEN when set

The token is never a flag's value (a command line is visible to every user of the machine)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from worker.client.connection import ClientTls

TOKEN_ENV = "DILASERVE_TOKEN"


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reaching a router with TLS and tokens (docs/deploy.md)")
    g.add_argument("--tls-ca", metavar="FILE", help="TLS, verifying the server with this CA")
    g.add_argument("--tls", action="store_true", help="TLS, verifying with the system's CAs")
    g.add_argument("--tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", metavar="FILE", help="its private key")
    g.add_argument("--tls-server-name", metavar="NAME", help="the server name to verify")
    g.add_argument("--token-file", metavar="FILE",
                   help=f"bearer token (default: ${TOKEN_ENV} when set)")


def client_options(args: argparse.Namespace) -> dict:
    """WorkerClient's `tls` and `token` from the flags; ValueError naming a bad one."""
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name:
        for flag in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(args, flag)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"--{flag.replace('_', '-')}: no such file {path!r}")
        if (args.tls_cert is None) != (args.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        tls = ClientTls(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            raise ValueError(f"--token-file: cannot read {args.token_file!r}: "
                             f"{err.strerror or err}") from None
        if not token:
            raise ValueError(f"--token-file: {args.token_file!r} is empty")
    else:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    return {"tls": tls, "token": token}
