"""`dilaserve bench-kernels`: the Triton kernels vs the mask-only torch path, side by side.

At LLaDA-8B shapes (hidden 4096, vocab 126,464, 32 heads of 128, block 32): time and peak
transient memory of the fused masked LM head and of block attention over cached K/V against the
torch path in the same dtype, and the longest canvas a memory budget fits against a LLaDA-style
step that computes logits over the whole canvas. On a GPU box, from the source tree:
    PYTHONPATH=. python -m dilaserve.cli.bench_kernels      (needs only torch and triton)
On CPU only the torch path's memory and time are measured; the fused head's memory is planned
from its tiles, and no GPU timing is claimed.
"""

from __future__ import annotations

import argparse
import sys

import torch

from dilaserve.benches import kernels as bench
from dilaserve.cli.tables import write_json
from kernels.dispatch import triton_installed

GIB = 1 << 30
LLADA_LAYERS = 32
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-kernels", help="Triton kernels vs torch: time and memory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=tuple(DTYPES), help="default: bfloat16 on CUDA, else float32")
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=126_464)
    p.add_argument("--intermediate", type=int, default=12_288)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=32)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--mask-token", type=int, default=126_336)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--canvases", default="256,512,1024")
    p.add_argument("--budget-gib", type=float, default=8.0, help="memory budget for the fit")
    p.add_argument("--cpu-head-dim", type=int, default=64,
                   help="hidden size of the head on CPU (its [n, V] logits do not depend on it)")
    p.add_argument("--repeats", type=int, help="timed repeats (default: 20 on CUDA, 3 on CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", help="write the results as JSON to this file ('-': stdout)")


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise ValueError(f"--{name}: expected positive integers, got {text!r}")
    return values


def _setup(args: argparse.Namespace) -> tuple[bench.Run, bench.Shape]:
    for name in ("hidden", "vocab", "intermediate", "heads", "kv_heads", "block", "cpu_head_dim"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')}: must be positive")
    if args.hidden % args.heads or args.heads % args.kv_heads:
        raise ValueError("--heads must divide --hidden and --kv-heads must divide --heads")
    if not 0 <= args.mask_token < args.vocab:
        raise ValueError(f"--mask-token: {args.mask_token} outside the vocabulary")
    if args.budget_gib <= 0:
        raise ValueError("--budget-gib: must be positive")
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise ValueError("--device cuda: no CUDA device here")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and cuda)
                          else "cpu")
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    repeats = args.repeats or (20 if device.type == "cuda" else 3)
    triton = device.type == "cuda" and triton_installed()
    shape = bench.Shape(args.hidden, args.vocab, args.intermediate, args.heads, args.kv_heads,
                        args.block, args.mask_token)
    return bench.Run(device, dtype, triton, repeats), shape


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):,.2f}"


def _ms(x: float | None) -> str:
    return "not measured" if x is None else f"{x:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.1f}x"


def fit(args, run: bench.Run, shape: bench.Shape, head_rows: list[dict]) -> dict:
    lengths = (1024, 4096) if run.device.type == "cuda" else (16, 48)
    act_per_token, act_fixed = bench.layer_activation_bytes(run, shape, lengths)
    head_dim = shape.hidden if run.device.type == "cuda" else args.cpu_head_dim
    sample = lengths[1]
    llada_head = bench.llada_head_bytes(run, shape, head_dim, sample) / sample
    elem = torch.tensor([], dtype=run.dtype).element_size()
    hidden_per_token = shape.hidden * elem  # the final hidden states, alive during the head
    kv_per_token = 2 * LLADA_LAYERS * shape.kv_heads * shape.head_dim * elem
    first = head_rows[0]  # batch 1: one block's masked positions
    budget = int(args.budget_gib * GIB)
    llada_per_token = max(act_per_token, llada_head + hidden_per_token)
    plans = {
        "llada-style (logits over the whole canvas)": (llada_per_token, act_fixed),
        "mask-only torch head": (act_per_token, act_fixed + first["torch_bytes"]),
        "fused head": (act_per_token, act_fixed + first["fused_bytes"]),
    }
    out = {"budget_bytes": budget, "activation_bytes_per_token": act_per_token,
           "activation_fixed_bytes": act_fixed, "llada_head_bytes_per_token": llada_head,
           "kv_bytes_per_token_32_layers": kv_per_token, "measured_at_lengths": lengths,
           "canvases": {}}
    for name, (per_token, fixed) in plans.items():
        out["canvases"][name] = bench.longest_canvas(budget, per_token, fixed)
        if name != next(iter(plans)):
            out["canvases"][name + " + dual-cache KV"] = bench.longest_canvas(
                budget, per_token + kv_per_token, fixed)
    return out


def run(args: argparse.Namespace) -> int:
    batches, canvases = _ints(args.batches, "batches"), _ints(args.canvases, "canvases")
    bench_run, shape = _setup(args)
    dev = bench_run.device
    print(f"bench-kernels on {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}"
          f", {str(bench_run.dtype).removeprefix('torch.')}, torch {torch.__version__}, "
          f"triton kernels {'run' if bench_run.triton else 'do not run (no CUDA device)'}")
    if not bench_run.triton:
        print("GPU timings: not measured. Fused head memory: planned from its tiles for an H100.")
    head = bench.bench_head(bench_run, shape, batches, args.cpu_head_dim)
    print(f"\n== fused masked LM head vs mask-only torch path (vocab {shape.vocab:,}, "
          f"block {shape.block} fully masked per row)")
    print(f"{'batch':>5} {'rows':>5} {'dim':>5} {'torch MiB':>11} {'fused MiB':>10} "
          f"{'mem ratio':>9} {'torch ms':>12} {'fused ms':>12} {'speedup':>8}  fused mem")
    for r in head:
        print(f"{r['batch']:>5} {r['rows']:>5} {r['dim']:>5} {_mib(r['torch_bytes']):>11} "
              f"{_mib(r['fused_bytes']):>10} {_ratio(r['torch_bytes'], r['fused_bytes']):>9} "
              f"{_ms(r['torch_ms']):>12} {_ms(r['fused_ms']):>12} "
              f"{_ratio(r['torch_ms'], r['fused_ms']):>8}  {r['fused_bytes_source']}")
        if "token_agreement" in r:
            print(f"      tokens agree {r['token_agreement']:.4f}, "
                  f"max |confidence diff| {r['max_conf_diff']:.2e}")
    attention = bench.bench_attention(bench_run, shape, batches, canvases)
    print(f"\n== block attention over cached K/V vs SDPA with a key mask ({shape.heads} heads, "
          f"{shape.kv_heads} KV heads, head dim {shape.head_dim}, ragged lengths)")
    print(f"{'canvas':>6} {'batch':>5} {'torch MiB':>10} {'fused MiB':>10} {'torch ms':>10} "
          f"{'fused ms':>12} {'speedup':>8} {'max diff':>9}")
    for r in attention:
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
        print(f"{r['canvas']:>6} {r['batch']:>5} {_mib(r['torch_bytes']):>10} "
              f"{_mib(r.get('fused_bytes')):>10} {_ms(r['torch_ms']):>10} "
              f"{_ms(r.get('fused_ms')):>12} {_ratio(r['torch_ms'], r.get('fused_ms')):>8} "
              f"{diff:>9}")
    fitted = fit(args, bench_run, shape, head)
    print(f"\n== longest canvas in a {args.budget_gib:g} GiB step budget (batch 1, weights "
          f"excluded; one layer's activations measured at {fitted['measured_at_lengths']} tokens:"
          f" {fitted['activation_bytes_per_token'] / 1024:,.1f} KiB/token; LLaDA-style head "
          f"{fitted['llada_head_bytes_per_token'] / 1024:,.1f} KiB/token; KV of "
          f"{LLADA_LAYERS} layers {fitted['kv_bytes_per_token_32_layers'] / 1024:,.1f} KiB/token"
          f" by formula)")
    base = next(iter(fitted["canvases"].values()))
    for name, canvas in fitted["canvases"].items():
        print(f"{name:>52}: {canvas:>10,} tokens  {_ratio(canvas, base):>7}")
    results = {"device": str(dev), "dtype": str(bench_run.dtype), "head": head,
               "attention": attention, "fit": fitted}
    write_json(results, args.json, default=str)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: the CLI's other commands need packages a GPU box may lack."""
    parser = argparse.ArgumentParser(prog="dilaserve bench-kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:
        print(f"dilaserve bench-kernels: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
