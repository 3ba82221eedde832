"""Step-cost profiles are found by hardware, dtype, TP degree and cache mode; a missing one is an
error listing what there is and the `dilaserve profile` command that measures it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dilaserve.cli.main import build_parser
from dilaserve.core.locations import SHIPPED_MODEL_DIR
from dilaserve.policy import default_policy
from worker.measure.profile_files import (
    QUALITY_FILE,
    choose_step_cost,
    find_step_cost,
    gpu_hardware,
    step_cost_file,
)
from worker.service.setup import load_profiles

PUBLISHED = Path(__file__).resolve().parents[2] / "worker/models/profiles_published/llada-8b"
SHIPPED = SHIPPED_MODEL_DIR / "profiles"


def test_gpu_names_are_rays_accelerator_types():
    assert gpu_hardware("NVIDIA A100-SXM4-80GB") == "A100"
    assert gpu_hardware("NVIDIA H100 80GB HBM3") == "H100"
    assert gpu_hardware("Tesla V100-SXM2-16GB") == "V100"
    assert gpu_hardware("NVIDIA GeForce RTX 4090") == "GeForce-RTX-4090"
    assert step_cost_file("A100", "bfloat16", 1, "dual") == "step_cost.a100.bfloat16.tp1.dual.json"


def test_the_published_llada_profile_is_found_as_bf16_on_an_a100():
    path = find_step_cost(PUBLISHED, "dual", 1, "bfloat16", "A100")
    assert path.name == "step_cost.a100.bfloat16.tp1.dual.json"
    assert find_step_cost(PUBLISHED, "dual", 1, "bfloat16") == path  # any hardware
    quality, cost = load_profiles(PUBLISHED, "dual", 1, "bfloat16", "A100", strict_hardware=True)
    assert quality.model.startswith("LLaDA") and cost.coef[0] > 0


@pytest.mark.parametrize(("key", "missing"), [
    (("dual", 1, "float32", "A100"), "A100 float32 TP=1 dual"),     # float32 was the old default
    (("dual", 1, "bfloat16", "V100"), "V100 bfloat16 TP=1 dual"),   # a GPU with no profile
    (("prefix", 1, "bfloat16", "A100"), "A100 bfloat16 TP=1 prefix"),
    (("dual", 2, "bfloat16", "A100"), "A100 bfloat16 TP=2 dual"),
])
def test_a_missing_profile_lists_what_exists_and_the_command(key, missing):
    with pytest.raises(FileNotFoundError) as err:
        find_step_cost(PUBLISHED, *key, model="~/models/LLaDA-8B-Instruct")
    text = str(err.value)
    assert f"no step-cost profile for {missing} in {PUBLISHED}" in text
    assert "it has: step_cost.a100.bfloat16.tp1.dual.json (a100 bfloat16 TP=1 dual)" in text
    command = text.split(": ")[-1]
    mode, tp, dtype, hardware = key
    assert command == (f"dilaserve profile --model ~/models/LLaDA-8B-Instruct --device cuda "
                       f"--dtype {dtype} --tp {tp} --cache-modes {mode} --what step-cost "
                       f"--out {PUBLISHED}")
    parsed = build_parser().parse_args(command.split()[1:])  # the real CLI takes it
    assert (parsed.device, parsed.dtype, parsed.tp) == ("cuda", dtype, tp)


def test_a_cpu_replica_takes_another_thread_count_a_gpu_replica_only_its_own():
    shipped = find_step_cost(SHIPPED, "dual", 1, "float32", "cpu-x86_64-1threads")
    assert find_step_cost(SHIPPED, "dual", 1, "float32", "cpu-x86_64-4threads") == shipped
    with pytest.raises(FileNotFoundError, match="no step-cost profile for A100 float32"):
        find_step_cost(SHIPPED, "dual", 1, "float32", "A100")


def test_stand_ins_are_said_and_strict_replicas_get_none(tmp_path):
    shutil.copy(PUBLISHED / QUALITY_FILE, tmp_path)
    shutil.copy(PUBLISHED / "step_cost.a100.bfloat16.tp1.dual.json", tmp_path)
    path, note = choose_step_cost(tmp_path, "dual", 2, "bfloat16", "A100")
    assert path.name.endswith(".tp1.dual.json") and "no step-cost profile for A100 bfloat16 " \
        "TP=2 dual" in note and "--tp 2" in note
    # a standalone worker on another machine starts from the A100's; a planned replica does not
    path, note = choose_step_cost(tmp_path, "dual", 1, "bfloat16", "H100", strict_hardware=False)
    assert path.name.startswith("step_cost.a100") and "H100" in note
    with pytest.raises(FileNotFoundError, match="H100 bfloat16 TP=1 dual"):
        choose_step_cost(tmp_path, "dual", 1, "bfloat16", "H100", strict_hardware=True)


def test_a_worker_policy_on_the_published_profiles_validates():
    quality, _ = load_profiles(PUBLISHED, default_policy().worker.cache_mode, 1, "bfloat16")
    assert quality.reference.block_size == 32


def test_a_worker_asked_for_bf16_starts_from_the_published_a100_profile(capsys):
    """`dilaserve worker --profiles .../llada-8b --dtype bfloat16` here (a CPU): the A100's bf16
    profile stands in, said on stderr; a planned replica on an A100 takes it as its own."""
    from dilaserve.profiles.step_cost import StepCostProfile
    from worker.service.setup import load_worker

    published = StepCostProfile.load(PUBLISHED / "step_cost.a100.bfloat16.tp1.dual.json")
    worker = load_worker(None, default_policy(), PUBLISHED, dtype="bfloat16")
    err = capsys.readouterr().err
    assert "starting from step_cost.a100.bfloat16.tp1.dual.json" in err
    assert worker.loop is not None
    _, cost = load_profiles(PUBLISHED, "dual", 1, "bfloat16", "A100", strict_hardware=True)
    assert cost == published.cost
    assert capsys.readouterr().err == ""  # its own: nothing to say
