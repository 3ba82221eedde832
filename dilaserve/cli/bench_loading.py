"""`dilaserve bench-loading`: peak host memory of loading a checkpoint, over its final weights.

Builds a ~300M-parameter checkpoint with random bf16 weights in LLaDA's Hugging Face layout (two
shards and an index, as `save_llada_format` writes them) in a temporary directory, then loads it
in a fresh Python process and reports how far that process's resident set rose above its baseline
(peak RSS, anonymous and file-backed pages alike: VmHWM after resetting it through
/proc/self/clear_refs) divided by the bytes of the loaded weights. The baseline is taken after the
imports and after loading a tiny checkpoint the same way, so code paths warmed once (torch's meta
device, the first allocation of each kind) are not counted against the weights. The temporary
directory is removed afterwards (--keep DIR keeps the checkpoint there instead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ~300M parameters: 16 layers of hidden 1024 (206M) plus a 50,304-row embedding and LM head (103M)
BENCH_SHAPE = {"hidden_size": 1024, "num_layers": 16, "num_heads": 16, "num_kv_heads": 16,
               "intermediate_size": 2816, "vocab_size": 50304, "max_seq_len": 2048}
TINY_SHAPE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4,
              "intermediate_size": 128, "vocab_size": 50304, "max_seq_len": 2048}
TARGET_RATIO = 1.2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-loading", help="peak host memory of loading a checkpoint",
                       description=__doc__)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"),
                   help="the dtype to load into (the checkpoint is bf16; default bfloat16)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="load onto this device (cuda: host memory is what is left on the host)")
    p.add_argument("--tp", type=int, default=1,
                   help="load rank 0's slice of a tensor-parallel replica of this degree")
    p.add_argument("--model", type=Path,
                   help="measure this checkpoint directory instead of building one")
    p.add_argument("--keep", type=Path, help="build the checkpoint here and keep it")
    p.add_argument("--json", type=Path, help="also write the result here")
    p.set_defaults(func=run)


def build_checkpoint(directory: Path, shape: dict, seed: int = 0) -> int:
    """A checkpoint with random bf16 weights in LLaDA's layout; returns its parameter count.
    Built on the meta device and filled tensor by tensor: no float32 copy is ever made."""
    import torch

    from worker.models.checkpoint import empty_model, save_llada_format
    from worker.models.config import ModelConfig

    vocab = shape["vocab_size"]
    cfg = ModelConfig(**shape, mask_token_id=vocab - 4, eos_token_id=vocab - 3,
                      pad_token_id=vocab - 3, name="bench-loading")
    model = empty_model(cfg)
    generator = torch.Generator().manual_seed(seed)
    for name, param in list(model.named_parameters()):
        owner, _, attr = name.rpartition(".")
        value = torch.randn(param.shape, generator=generator, dtype=torch.bfloat16) * 0.02
        setattr(model.get_submodule(owner), attr, torch.nn.Parameter(value, requires_grad=False))
    save_llada_format(model, directory)
    return cfg.num_parameters()


def run(args: argparse.Namespace) -> int:
    if args.tp < 1:
        raise ValueError(f"--tp: must be >= 1, got {args.tp}")
    with tempfile.TemporaryDirectory(prefix="dilaserve-bench-loading-") as tmp:
        tiny = Path(tmp) / "tiny"
        build_checkpoint(tiny, TINY_SHAPE)
        if args.model is not None:
            model_dir, params = args.model, None
        else:
            model_dir = args.keep or Path(tmp) / "bench"
            started = time.monotonic()
            params = build_checkpoint(model_dir, BENCH_SHAPE)
            print(f"built {params / 1e6:.0f}M-parameter bf16 checkpoint in {model_dir} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        result = _probe_in_subprocess(model_dir, tiny, args.dtype, args.device, args.tp)
    files = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) \
        if model_dir.exists() else result["file_bytes"]
    result.update(checkpoint=str(model_dir) if args.keep or args.model else "(temporary)",
                  parameters=params, file_bytes=files, target_ratio=TARGET_RATIO)
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _probe_in_subprocess(model_dir: Path, tiny: Path, dtype: str, device: str, tp: int) -> dict:
    command = [sys.executable, "-m", "dilaserve.cli.bench_loading", str(model_dir), str(tiny),
               dtype, device, str(tp)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(f"the loading process failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_result(r: dict) -> None:
    gib = 2**30
    where = f"{r['device']} {r['dtype']}" + (f", rank 0 of TP={r['tp']}" if r["tp"] > 1 else "")
    print(f"checkpoint: {r['checkpoint']}, {r['file_bytes'] / gib:.2f} GiB of safetensors"
          + (f", {r['parameters'] / 1e6:.0f}M parameters" if r["parameters"] else ""))
    print(f"loaded ({where}) in {r['load_s']:.1f} s: {r['weight_bytes'] / gib:.3f} GiB of weights")
    print(f"peak host memory above the post-import baseline: {r['peak_host_bytes'] / gib:.3f} GiB "
          f"(VmHWM {'reset' if r['hwm_reset'] else 'not resettable: RSS sampled'}); "
          f"anonymous at the end: {r['anon_bytes'] / gib:.3f} GiB")
    verdict = "within" if r["ratio"] <= r["target_ratio"] else "OVER"
    print(f"ratio peak / weights: {r['ratio']:.3f}x ({verdict} the {r['target_ratio']}x target)")
    if r.get("device_peak_bytes"):
        print(f"device memory peak: {r['device_peak_bytes'] / gib:.3f} GiB")


# -- the measured process ------------------------------------------------------------------------


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _probe(model_dir: str, tiny: str, dtype_name: str, device: str, tp: int) -> dict:
    import threading

    import torch

    from worker.models.checkpoint import load_model
    from worker.models.device import require_device, torch_dtype
    from worker.parallel.loading import load_shard

    require_device(device)
    dtype = torch_dtype(dtype_name)

    def load(directory: str):
        if tp == 1:
            return load_model(directory, dtype=dtype, device=device)
        return load_shard(directory, 0, tp, lambda t: t, dtype, device)

    load(tiny)  # warms the code paths once
    reset = _reset_peak()
    base = _status()
    sampled = [base["VmRSS"]]
    stop = threading.Event()

    def sample() -> None:  # only where VmHWM cannot be reset
        while not stop.wait(0.002):
            sampled[0] = max(sampled[0], _status()["VmRSS"])

    sampler = None if reset else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    model = load(model_dir)
    load_s = time.monotonic() - started
    stop.set()
    end = _status()
    peak = (end["VmHWM"] if reset else max(sampled[0], end["VmRSS"])) - base["VmRSS"]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"device": device, "dtype": dtype_name, "tp": tp, "load_s": load_s,
            "weight_bytes": weights, "peak_host_bytes": peak,
            "anon_bytes": end["RssAnon"] - base["RssAnon"], "hwm_reset": reset,
            "ratio": peak / weights,
            "device_peak_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else 0,
            "file_bytes": sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))}


if __name__ == "__main__":
    model_arg, tiny_arg, dtype_arg, device_arg, tp_arg = sys.argv[1:6]
    print(json.dumps(_probe(model_arg, tiny_arg, dtype_arg, device_arg, int(tp_arg))))
