"""dilaserve: cluster serving for diffusion language models (subcommands below)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each subcommand module defines register(subparsers) which adds a parser with func=run(args)->int
COMMANDS = (
    "demo", "profile", "bench_engine", "generate_local", "train", "plan", "worker", "bench_worker",
    "bench", "serve", "status", "policy", "bench_kernels", "bench_tp", "bench_router",
    "tiny_checkpoint", "bench_loading", "bench_chaos", "gpu_check", "secrets",
)


def build_parser(modules: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dilaserve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(f"dilaserve.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # a command named like its module imports only that module, so it runs where other commands'
    # packages are missing (bench-kernels on a GPU box with only torch and triton)
    named = argv[0].replace("-", "_") if argv else ""
    parser = build_parser((named,) if named in COMMANDS else COMMANDS)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"dilaserve {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dilaserve {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`dilaserve ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
