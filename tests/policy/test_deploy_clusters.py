"""deploy/cluster-*.yaml: Ray's own config checks accept them, their file mounts and commands name
files of this checkout, and their dilaserve command lines parse (and validate) with the real CLI."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from dilaserve.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = sorted((ROOT / "deploy").glob("cluster-*.yaml"))
SHELL_BREAKS = {">", "2>&1", "<", "&", "&&", "||", ";", "|"}
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands",
                 "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def commands(config: dict, *lists: str) -> list[str]:
    return [c for name in (lists or COMMAND_LISTS) for c in config.get(name) or []]


def checkout_mount(config: dict) -> str:
    """The remote path this checkout is copied to (the mount whose source is `.`)."""
    (remote,) = [r for r, local in config["file_mounts"].items() if local == "."]
    return remote.rstrip("/")


def dilaserve_args(command: str, checkout: str) -> list[str] | None:
    """The arguments of a `.../bin/dilaserve ...` command, with checkout paths made local."""
    words = shlex.split(command)
    starts = [i for i, w in enumerate(words) if w.endswith("bin/dilaserve")]
    if not starts:
        return None
    args = []
    for word in words[starts[0] + 1:]:
        if word in SHELL_BREAKS:
            break
        inside = word.startswith(checkout + "/")
        args.append(str(ROOT / word[len(checkout) + 1:]) if inside else word)
    return args


def test_an_onprem_and_a_cloud_cluster_are_shipped():
    assert {p.name for p in CLUSTERS} == {"cluster-onprem.yaml", "cluster-aws.yaml",
                                          "cluster-llada-8b.yaml"}
    assert {load(p)["provider"]["type"] for p in CLUSTERS} == {"local", "aws"}


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_ray_accepts_the_cluster_file(path):
    config = load(path)
    prepared = prepare_config(copy.deepcopy(config))  # what `ray up` does before launching
    validate_config(prepared)  # Ray's JSON schema
    for key in ("cluster_name", "auth", "file_mounts", "setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert config.get(key), key
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_onprem_cluster_names_its_machines():
    provider = load(ROOT / "deploy" / "cluster-onprem.yaml")["provider"]
    assert provider["head_ip"] and provider["worker_ips"]
    assert provider["head_ip"] not in provider["worker_ips"]


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_file_mounts_come_from_this_checkout(path):
    config = load(path)
    for local in config["file_mounts"].values():  # `ray up` runs from the repository root
        assert (ROOT / local).exists(), local
    assert (ROOT / "pyproject.toml").is_file() and checkout_mount(config)


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_commands_reference_files_of_this_checkout(path):
    config = load(path)
    checkout = checkout_mount(config)
    text = "\n".join(commands(config))
    referenced = re.findall(re.escape(checkout) + r"/(\S+)", text)
    assert referenced
    for relative in referenced:
        assert (ROOT / relative).exists(), relative


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_setup_installs_this_checkout_and_checks_the_model(path):
    config = load(path)
    checkout = checkout_mount(config)
    setup = commands(config, "setup_commands")
    assert any(re.search(rf"pip install .*-e {re.escape(checkout)}(\s|$)", c) for c in setup)
    everywhere_or_on_workers = commands(config, "setup_commands", "worker_setup_commands")
    assert any("policy validate --check-model" in c for c in everywhere_or_on_workers)


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_head_starts_ray_then_a_detached_serve_and_workers_join_it(path, capsys):
    config = load(path)
    checkout = checkout_mount(config)
    head = config["head_start_ray_commands"]
    ray_at = next(i for i, c in enumerate(head) if "ray start --head" in c)
    serve_at = next(i for i, c in enumerate(head) if "bin/dilaserve serve" in c)
    assert ray_at < serve_at
    serve = head[serve_at]
    assert serve.startswith("nohup ") and re.search(r"\s&\s", serve) and "< /dev/null" in serve
    args = dilaserve_args(serve, checkout)
    parsed = build_parser().parse_args(args)  # the real CLI: a typo here fails
    assert parsed.command == "serve" and parsed.address == "auto"
    assert main(["policy", "validate", str(parsed.policy)]) == 0, capsys.readouterr().err
    port = re.search(r"ray start --head .*--port=(\d+)", head[ray_at]).group(1)
    assert any(f"--address=$RAY_HEAD_IP:{port}" in c for c in config["worker_start_ray_commands"])


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_the_served_model_reaches_every_node(path):
    """The policy's model is the shipped one, or under a file mount, or fetched by a setup step."""
    config = load(path)
    checkout = checkout_mount(config)
    serve = next(c for c in config["head_start_ray_commands"] if "bin/dilaserve serve" in c)
    policy = Path(build_parser().parse_args(dilaserve_args(serve, checkout)).policy)
    model = yaml.safe_load(policy.read_text())["cluster"]["model"]
    if model is None:
        return  # the shipped model is package data: every node's install has it
    mounted = any(model.startswith(remote.rstrip("/") + "/") for remote in config["file_mounts"])
    fetched = any(model in c for c in commands(config, "setup_commands", "worker_setup_commands"))
    assert mounted or fetched, model


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_every_dilaserve_command_line_parses(path):
    config = load(path)
    checkout = checkout_mount(config)
    lines = [a for c in commands(config) if (a := dilaserve_args(c, checkout)) is not None]
    assert len(lines) >= 2
    for args in lines:
        build_parser().parse_args(args)


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_every_node_gets_the_secrets_and_ray_starts_with_token_auth(path):
    """`dilaserve secrets deploy/secrets` made them here: the mount copies them (and only it:
    the checkout's copy leaves them out); each node installs Ray's token before Ray starts."""
    config = load(path)
    assert config["file_mounts"]["~/dilaserve-secrets"] == "deploy/secrets"
    assert "deploy/secrets/*" in config["rsync_exclude"]
    assert any("~/dilaserve-secrets/ray.token ~/.ray/auth_token" in c
               for c in config["setup_commands"])
    starts = [c for c in commands(config, "head_start_ray_commands", "worker_start_ray_commands")
              if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token " in c for c in starts)
