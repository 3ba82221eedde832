"""Regenerate the Python code of `proto/dilaserve.proto` (committed beside it).

    python -m proto.compile            # rewrite proto/dilaserve_pb2{,_grpc}.py and .pyi
    python -m proto.compile --out DIR  # write them under DIR/proto/ instead (the currency test)

Compiled with the repository root on the include path, so that the generated code imports
`from proto import dilaserve_pb2` and works inside the package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "proto/dilaserve.proto"
GENERATED = ("dilaserve_pb2.py", "dilaserve_pb2_grpc.py", "dilaserve_pb2.pyi")


def compile_proto(out_root: Path = ROOT) -> list[Path]:
    """Compile into out_root/proto/; returns the generated files."""
    (out_root / "proto").mkdir(parents=True, exist_ok=True)
    grpc_include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{grpc_include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(ROOT / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    return [out_root / "proto" / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write proto/ under")
    args = parser.parse_args(argv)
    for path in compile_proto(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
