"""The shipped cluster policies name TLS files and tokens under ~/dilaserve-secrets (where
`ray up` copies what `dilaserve secrets` made, and validation checks they are there): the tests
here run with a home directory that has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dilaserve.cli.secrets import write_secrets

SECRETS = "dilaserve-secrets"


@pytest.fixture(scope="session")
def secrets_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    write_secrets(home / SECRETS, client_cert=True)
    return home


@pytest.fixture(autouse=True)
def _home_with_secrets(secrets_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(secrets_home))
