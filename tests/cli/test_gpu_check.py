"""`dilaserve gpu-check` (docs/gpu-check.md): the command a lent GPU machine runs, kept from rotting
by running it here on its tiny CPU shape; the LLaDA-8B shape checked without a GPU (its config,
its size on the meta device, its tokenizer's special ids); the bandwidth table; failures that
stay one line and leave the other phases standing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dilaserve.benches import gpu_check
from dilaserve.benches.gpu_check_model import build_tokenizer, random_model, write_model_dir
from dilaserve.benches.gpu_check_shapes import LLADA_SPECIAL_IDS, known_bandwidth, llada_8b, tiny
from dilaserve.benches.gpu_check_steps import GridRunner, Measured, ModeResult, bandwidth_rows
from dilaserve.cli.gpu_check import DEFAULT_OUT, options
from dilaserve.cli.main import build_parser, main
from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.core.steps import StepFeatures
from dilaserve.core.tokenizer import ChatMessage
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile, StepSample
from kernels.dispatch import MODE_ENV
from solver.profile_set import load_profile_set
from worker.measure.profile_files import find_step_cost
from worker.models.checkpoint import empty_model, read_config

ROOT = Path(__file__).resolve().parents[2]
SHARED_CONFIG = ROOT.parent / "shared" / "llada-8b-instruct" / "config.json"
LLADA_INDEX_TOTAL_SIZE = 16_031_162_368  # the real checkpoint's bf16 bytes (shared README)


@pytest.fixture(autouse=True)
def _keep_threads():
    """The command sets torch's thread count (--threads); the rest of the suite keeps its own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _published() -> list[str]:
    return sorted(p.name for p in PUBLISHED_PROFILES_DIR.iterdir())


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One CPU run of the tiny shape (no server: `serve` is the slow test's)."""
    out = tmp_path_factory.mktemp("gpu-check")
    before, threads = _published(), torch.get_num_threads()
    assert main(["gpu-check", "--out", str(out), "--skip", "serve"]) == 0
    torch.set_num_threads(threads)
    assert _published() == before
    return out


def test_the_cpu_run_writes_a_profile_per_cache_mode_and_a_summary(cpu_run):
    summary = json.loads(next(cpu_run.glob("gpu_check.cpu-*.float32.json")).read_text())
    assert summary["schema"] == "dilaserve.gpu_check/v1" and summary["ok"]
    assert summary["shape"] == "tiny" and summary["device"]["device"] == "cpu"
    phases = summary["phases"]
    assert [phases[p]["status"] for p in ("build", "steps", "kernels", "serve")] == [
        "ok", "ok", "ok", "skipped"]
    assert phases["build"]["mask_id"] == 450 and phases["build"]["tokenizer_vocab"] == 512
    grid = tiny().grid
    for mode in ("dual", "prefix", "none"):
        profile = StepCostProfile.load(find_step_cost(cpu_run, mode, 1, "float32"))
        assert profile.provenance["source"] == "measured"
        assert {"torch", "driver", "gpu", "date", "command"} <= set(profile.provenance)
        fitted = [s for s in profile.samples if not s["heldout"]]
        phases_run = 1 if mode == "none" else 2
        assert len(fitted) == len(grid.batches) * len(grid.prompts) * phases_run
        assert {s["phase"] for s in profile.samples if s["heldout"]} == {"mixed"}
        assert all(s["time_s"] > 0 for s in profile.samples)
    bound = phases["steps"]["bandwidth"]
    assert {(r["cache_mode"], r["prompt"]) for r in bound} == {
        (m, p) for m in ("dual", "prefix") for p in grid.prompts}
    assert summary["batch1_reuse_vs_bandwidth"]["cache_mode"] == "dual"


def test_a_gpu_runs_files_beside_the_published_ones_leave_the_a100_profile_set_as_it_was(
        cpu_run, tmp_path):
    published = tmp_path / "llada-8b"
    shutil.copytree(PUBLISHED_PROFILES_DIR, published)
    for path in cpu_run.glob("*.json"):  # the profiles and the summary, as an H200 run names them
        data = json.loads(path.read_text())
        if "hardware" in data:
            data |= {"hardware": "H200", "dtype": "bfloat16"}
        name = re.sub(r"cpu-[a-z0-9-]+threads", "h200", path.name).replace("float32", "bfloat16")
        (published / name).write_text(json.dumps(data))
    assert (published / "gpu_check.h200.bfloat16.json").is_file()
    assert find_step_cost(published, "dual", 1, "bfloat16", "A100").name.startswith("step_cost.a1")
    assert find_step_cost(published, "dual", 1, "bfloat16", "H200").name.startswith("step_cost.h2")
    profiles = load_profile_set(published)
    assert profiles.hardware == ("A100", "H100", "H200", "L40S")
    # the measured H200 profile took the place of the one derived by roofline
    h200 = [p for p in profiles.step_costs if p.hardware == "H200"]
    assert len(h200) == 1 and "derived" not in h200[0].provenance
    assert {p.cache_mode for p in profiles.step_costs} == {"dual"}
    assert profiles.reload_s == load_profile_set(PUBLISHED_PROFILES_DIR).reload_s


def test_on_cpu_the_default_out_is_runs_and_the_published_directory_is_refused():
    parse = build_parser(("gpu_check",)).parse_args
    chosen = options(parse(["gpu-check"]))
    assert chosen.out == DEFAULT_OUT and chosen.shape.name == "tiny"
    assert chosen.device.type == "cpu" and chosen.dtype == torch.float32
    with pytest.raises(ValueError, match="takes only the llada-8b shape measured on cuda"):
        options(parse(["gpu-check", "--out", str(PUBLISHED_PROFILES_DIR)]))
    with pytest.raises(ValueError, match="--skip: unknown phase"):
        options(parse(["gpu-check", "--skip", "build"]))
    if not torch.cuda.is_available():
        assert main(["gpu-check", "--device", "cuda"]) == 2  # one line, no traceback


def test_the_llada_shape_is_the_real_config_and_its_bf16_weights_are_the_checkpoints_bytes(
        tmp_path):
    shape = llada_8b()
    if SHARED_CONFIG.is_file():
        assert shape.config == json.loads(SHARED_CONFIG.read_text())
    grid = shape.grid
    assert (grid.batches, grid.prompts, grid.canvas, grid.block) == ((1, 4, 16, 32), (512, 1024),
                                                                     256, 32)
    assert grid.cache_modes == ("dual", "prefix", "none")
    (tmp_path / "config.json").write_text(json.dumps(shape.config))
    cfg, fmt = read_config(tmp_path)
    assert fmt == "llada" and (cfg.num_layers, cfg.hidden_size) == (32, 4096)
    model = empty_model(cfg)  # meta: no storage
    assert sum(p.numel() for p in model.parameters()) * 2 == LLADA_INDEX_TOTAL_SIZE


def test_the_llada_tokenizer_has_llada_s_special_ids_and_loads_as_a_checkpoint_s(tmp_path):
    from worker.models.hf_tokenizer import HFTokenizer

    cfg, text_ids = write_model_dir(llada_8b(), tmp_path)
    assert (cfg.vocab_size, cfg.mask_token_id, cfg.eos_token_id) == (126_464, 126_336, 126_081)
    tok = HFTokenizer.load(tmp_path)
    assert (tok.vocab_size, tok.mask_id, tok.eos_id) == (126_464, 126_336, 126_081)
    assert LLADA_SPECIAL_IDS["<|eot_id|>"] in tok.stop_ids
    ids = tok.encode_chat([ChatMessage("user", "Hi")])
    assert ids[0] == 126_080 and ids[1] == 126_346 and 126_348 in ids
    assert 0 < len(text_ids) < 400 and max(text_ids) < 126_080
    assert build_tokenizer(512, dict(zip(LLADA_SPECIAL_IDS, range(448, 454)))).get_vocab_size() \
        == 512


def test_random_weights_are_made_in_the_asked_dtype_with_only_text_rows_in_the_head(tmp_path):
    cfg, text_ids = write_model_dir(tiny(), tmp_path)
    model = random_model(cfg, torch.bfloat16, torch.device("cpu"), seed=0, text_ids=text_ids)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(not p.is_meta for p in model.parameters())
    assert bool((model.blocks[0].attn_norm.weight == 1).all())
    rows = model.lm_head.weight.abs().sum(dim=1) > 0
    assert rows.nonzero().squeeze(1).tolist() == text_ids


def test_the_bandwidth_table_names_gpus_as_torch_does():
    assert known_bandwidth("NVIDIA H200") == (4.8, "H200")
    assert known_bandwidth("NVIDIA H100 80GB HBM3") == (3.35, "H100 SXM")
    assert known_bandwidth("NVIDIA A100-SXM4-80GB") == (2.0, "A100 80GB")
    assert known_bandwidth("NVIDIA A100 80GB PCIe") == (2.0, "A100 80GB")
    assert known_bandwidth("NVIDIA L40S") == (0.864, "L40S")
    for other in ("NVIDIA H100 PCIe", "NVIDIA A100-SXM4-40GB", "NVIDIA GeForce RTX 4090"):
        assert known_bandwidth(other) is None


def test_the_bound_is_weight_bytes_over_bandwidth():
    sample = StepSample(StepFeatures(1, 0, 32, 32 * 769), 0.010)
    meta = {"phase": "reuse", "batch": 1, "prompt": 512, "seq_len": 768}
    result = ModeResult("dual", (Measured(sample, meta),), (), StepCostModel((0, 0, 0, 0)), 0, 0)
    (row,) = bandwidth_rows({"dual": result}, weights=16_000_000_000, kv_per_token=524_288,
                            bandwidth_tbs=4.8)
    assert row["bound_ms"] == pytest.approx(16e9 / 4.8e12 * 1e3)
    assert row["times_bound"] == pytest.approx(10.0 / row["bound_ms"])
    assert row["kv_bytes"] == 524_288 * 769
    assert bandwidth_rows({"dual": result}, 16_000_000_000, 524_288, None)[0]["bound_ms"] is None


def test_a_triton_failure_in_the_steps_measures_again_on_the_torch_path(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(MODE_ENV, "auto")
    monkeypatch.setattr(gpu_check, "_engine_kernels", lambda device: "triton")
    measure = GridRunner.measure

    def triton_breaks(self, mode, progress=lambda _: None):
        if gpu_check.os.environ.get(MODE_ENV) != "torch":
            raise RuntimeError("triton: out of resources\nsecond line")
        return measure(self, mode, progress)

    monkeypatch.setattr(GridRunner, "measure", triton_breaks)
    assert main(["gpu-check", "--out", str(tmp_path), "--skip", "kernels,serve"]) == 0
    summary = json.loads(next(tmp_path.glob("gpu_check.*.json")).read_text())
    steps = summary["phases"]["steps"]
    assert steps["engine_kernels"] == "torch"
    assert steps["triton_error"] == "RuntimeError: triton: out of resources"
    profile = StepCostProfile.load(find_step_cost(tmp_path, "dual", 1, "float32"))
    assert profile.provenance["kernels"] == "torch"


def test_a_failing_phase_is_one_line_and_the_others_still_run(monkeypatch, tmp_path, capsys):
    from dilaserve.benches import kernels as bench

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nmore")

    monkeypatch.setattr(bench, "bench_head", boom)
    assert main(["gpu-check", "--out", str(tmp_path), "--skip", "serve"]) == 1
    err = capsys.readouterr().err
    assert "dilaserve gpu-check: error: kernels: RuntimeError: boom\n" in err
    assert "Traceback" not in err
    summary = json.loads(next(tmp_path.glob("gpu_check.*.json")).read_text())
    assert not summary["ok"] and summary["phases"]["steps"]["status"] == "ok"
    assert "Traceback" in summary["phases"]["kernels"]["traceback"]


@pytest.mark.slow
def test_make_gpu_check_runs_every_phase_on_cpu_in_seconds(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-s", "gpu-check", f"GPU_PYTHON={sys.executable}",
                           f"GPU_CHECK_ARGS=--out {tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    summary = json.loads(next(tmp_path.glob("gpu_check.*.json")).read_text())
    assert summary["ok"] and summary["seconds"] < 60
    serve = summary["phases"]["serve"]
    assert serve["status"] == "ok" and serve["device"] == "cpu" and serve["health"] == "SERVING"
    assert all(r["tokens"] == 64 for r in serve["requests"])
    assert "serve: ok" in done.stdout and "ok in" in done.stdout
