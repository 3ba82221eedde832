"""`dilaserve profile --derive GPU`: a step-cost profile for another GPU by roofline.

dilaserve profile --derive H100 [--from FILE_OR_DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.profiles.roofline import derive, provenance_line
from dilaserve.profiles.step_cost import STEP_COST_SCHEMA, StepCostProfile
from worker.measure.profile_files import step_cost_file


def _sources(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"--from: no such file or directory {str(path)!r}")
    found = [p for p in sorted(path.glob("step_cost.*.json"))
             if "derived" not in StepCostProfile.load(p).provenance]
    if not found:
        raise ValueError(f"--from: no measured step-cost profile ({STEP_COST_SCHEMA}) in {path}")
    return found


def run(args: argparse.Namespace) -> int:
    source = args.derive_from or PUBLISHED_PROFILES_DIR
    out = args.out or (source if source.is_dir() else source.parent)
    for path in _sources(source):
        try:
            measured = StepCostProfile.load(path)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"--from: {path} is not a step-cost profile ({err})") from None
        derived = derive(measured, args.derive)
        target = out / step_cost_file(derived.hardware, derived.dtype, derived.tp,
                                      derived.cache_mode)
        derived.save(target)
        scales = derived.provenance["derived"]["scales"]
        print(f"{target}: {provenance_line(derived)}; per-forward and KV terms x"
              f"{scales['memory_bandwidth']:.3f}, per-token terms x{scales['compute']:.3f}")
    return 0
