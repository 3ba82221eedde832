"""LLaDA-8B-Instruct on GPU nodes (deploy/cluster-llada-8b.yaml, deploy/cluster-aws.yaml and
deploy/policies/llada-8b-a100.yaml): each GPU node checks the checkpoint it was given before
anything serves, the policy validates against the real model's config.json, and the profile its
replicas look up (A100, bfloat16, TP 1, dual) is the published one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dilaserve.cli.main import build_parser, main
from tests.policy.test_deploy_clusters import checkout_mount, commands, dilaserve_args

ROOT = Path(__file__).resolve().parents[2]
SHARED_LLADA = ROOT.parent / "shared" / "llada-8b-instruct"
POLICY = ROOT / "deploy" / "policies" / "llada-8b-a100.yaml"
PUBLISHED = ROOT / "worker" / "models" / "profiles_published" / "llada-8b"
LLADA_CLUSTERS = ("cluster-llada-8b.yaml", "cluster-aws.yaml")
needs_shared = pytest.mark.skipif(not SHARED_LLADA.is_dir(),
                                  reason="../shared/llada-8b-instruct is absent")


@pytest.mark.parametrize("name", LLADA_CLUSTERS)
def test_every_gpu_node_checks_the_checkpoint_it_serves_before_serving(name):
    config = yaml.safe_load((ROOT / "deploy" / name).read_text())
    checkout = checkout_mount(config)
    policy_model = yaml.safe_load(POLICY.read_text())["cluster"]["model"]
    checks = [build_parser().parse_args(a) for c in commands(config, "worker_setup_commands")
              if (a := dilaserve_args(c, checkout)) and a[:2] == ["policy", "validate"]]
    assert len(checks) == 1
    (check,) = checks
    assert check.check_model and str(check.model) == policy_model and check.file == POLICY
    serve = next(c for c in config["head_start_ray_commands"] if "bin/dilaserve serve" in c)
    assert build_parser().parse_args(dilaserve_args(serve, checkout)).policy == POLICY
    if config["provider"]["type"] == "local":  # copied from this checkout to every node
        assert config["file_mounts"]["~/dilaserve-models"] == "deploy/models"
        assert policy_model.startswith("~/dilaserve-models/")


@needs_shared
def test_the_policy_validates_against_llada_8b_instructs_config(capsys):
    assert main(["policy", "validate", str(POLICY), "--model", str(SHARED_LLADA),
                 "--profiles", str(PUBLISHED)]) == 0
    out = capsys.readouterr().out
    assert "llada format; 32 layers, hidden 4096, 126464 embedding rows, context 4096" in out
    assert "replicas on auto in auto" in out


def fake_node_copy(tmp_path: Path) -> Path:
    """The checkpoint as a node has it after the copy: the real config.json and index names,
    placeholder shards (the check never reads weights)."""
    model = tmp_path / "LLaDA-8B-Instruct"
    model.mkdir()
    shutil.copy(SHARED_LLADA / "config.json", model)
    shards = [f"model-0000{i}-of-00006.safetensors" for i in range(1, 7)]
    index = {"metadata": {"total_size": 16031162368},
             "weight_map": {f"model.transformer.blocks.{i}.q_proj.weight": s
                            for i, s in enumerate(shards)}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    for shard in shards:
        (model / shard).write_bytes(b"")
    return model


def check_node(capsys, model: Path) -> tuple[int, str, str]:
    code = main(["policy", "validate", "--check-model", "--model", str(model), "--profiles",
                 str(PUBLISHED), str(POLICY)])
    out, err = capsys.readouterr()
    return code, out, err


@needs_shared
def test_a_gpu_node_finds_its_replicas_profile_and_whole_weights(tmp_path, capsys, monkeypatch):
    model = fake_node_copy(tmp_path)
    code, out, err = check_node(capsys, model)  # this machine: no GPU
    assert code == 0, err
    assert "with 4 step-cost profile(s) is on this machine (6 weight file(s)" in out
    assert "no GPU on this machine" in out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA A100-SXM4-80GB")
    code, out, err = check_node(capsys, model)
    assert code == 0, err
    assert ("this machine's replicas: cuda bfloat16 (GPU default: no torch_dtype in "
            "config.json) on A100, profile step_cost.a100.bfloat16.tp1.dual.json") in out
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H100 80GB HBM3")
    code, out, err = check_node(capsys, model)  # the profile derived by roofline
    assert code == 0 and "profile step_cost.h100.bfloat16.tp1.dual.json" in out, err
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Tesla V100-SXM2-32GB")
    code, _, err = check_node(capsys, model)
    assert code == 2 and "no step-cost profile for V100 bfloat16 TP=1 dual" in err
    assert "dilaserve profile --model" in err and "--device cuda --dtype bfloat16" in err


@needs_shared
def test_a_node_with_a_partial_copy_is_stopped_naming_what_is_missing(tmp_path, capsys):
    model = fake_node_copy(tmp_path)
    (model / "model-00003-of-00006.safetensors").unlink()
    code, _, err = check_node(capsys, model)
    assert code == 2 and "lacks 1 of the 6 shards" in err
    assert "model-00003-of-00006.safetensors" in err and "Traceback" not in err
    for shard in model.glob("*.safetensors"):
        shard.unlink()
    code, _, err = check_node(capsys, model)
    assert code == 2 and f"no *.safetensors in {model}" in err
