"""`dilaserve policy validate FILE`: check an SLO policy without touching a cluster.

Prints a summary (classes with deadline, floor, priority and best-effort; worker settings; cluster
shape and reconfiguration knobs) and exits 0, or prints every problem with its file, line and
field and exits 2. Quality floors given as an accuracy drop are resolved on the model's quality
profile when it is on this machine. With --model DIR the policy is also checked against that
checkpoint (config.json and tokenizer files; no weights needed): the tokenizer loads and belongs
to the model, and the worker settings fit its context.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dilaserve.policy import Policy, load_policy
from dilaserve.policy.summary import cluster_lines, policy_lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="check SLO policy files", description=__doc__)
    actions = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    v = actions.add_parser("validate", help="validate a policy file and summarize it")
    v.add_argument("file", type=Path, help="the policy YAML")
    v.add_argument(
        "--worker",
        action="store_true",
        help="a worker policy (`dilaserve worker --policy`): any cluster section is not checked",
    )
    v.add_argument(
        "--profiles",
        type=Path,
        help="profile directory to resolve accuracy-drop floors on (default: the policy's "
        "cluster.profiles, else MODEL/profiles; the shipped model's for --worker)",
    )
    v.add_argument(
        "--model",
        type=Path,
        help="a checkpoint directory to check the policy against (config.json and tokenizer "
        "files; weights are not read); default for a cluster policy: its cluster.model",
    )
    v.add_argument(
        "--check-model",
        action="store_true",
        help="also require the model directory and its profiles on this machine (the setup "
        "commands of deploy/cluster-*.yaml run this on every node)",
    )
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.check_model and args.worker:
            raise ValueError("--check-model: needs a cluster policy (the model path is in it)")
        lines = summarize(args.file, args.worker, args.profiles, args.check_model, args.model)
    except (ValueError, OSError) as err:
        for problem in str(err).splitlines() or [type(err).__name__]:
            print(f"dilaserve policy: error: {problem}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def summarize(
    path: Path, worker_only: bool, profiles: Path | None, check_model: bool = False,
    model_dir: Path | None = None,
) -> list[str]:
    if worker_only:
        policy = load_policy(path)
        kind, cluster = "worker policy", None
        model = None
    else:
        from dilaserve.policy.cluster_loader import load_cluster_policy

        cluster_policy = load_cluster_policy(path)
        policy, cluster = cluster_policy.policy, cluster_policy.cluster
        kind, model = "cluster policy", cluster.model
        profiles = profiles or (Path(cluster.profiles) if cluster.profiles else None)
    if model_dir is not None:
        model = str(model_dir)
    quality, note = _quality(policy, profiles, model)
    lines = [f"{path}: a valid {kind}", *policy_lines(policy, quality, note)]
    if cluster is not None:
        lines += cluster_lines(cluster)
    if model_dir is not None:
        from dilaserve.cli.model_check import check_policy_against_model

        lines += check_policy_against_model(policy, model_dir)
    if check_model:
        lines += _require_model(model, profiles, policy, cluster)
    return lines


def _require_model(model: str | None, profiles: Path | None, policy: Policy, cluster) -> list[str]:
    """On a node, before it serves: the model's config and weight files (not read), its profiles,
    and on a GPU node the step-cost profile its replicas will look up (this GPU, the dtype they
    will load in, TP=1, the policy's cache mode)."""
    from dilaserve.core.locations import SHIPPED_MODEL_DIR
    from worker.measure.profile_files import QUALITY_FILE
    from worker.models.checkpoint import weight_files

    directory = Path(model) if model else SHIPPED_MODEL_DIR
    if not (directory / "config.json").is_file():
        raise ValueError(
            f"cluster.model: {directory} is not a model directory on this machine (no config.json)"
        )
    profiles = profiles or directory / "profiles"
    step_costs = sorted(profiles.glob("step_cost.*.json"))
    if not (profiles / QUALITY_FILE).is_file() or not step_costs:
        raise ValueError(
            f"cluster.profiles: {profiles} on this machine lacks {QUALITY_FILE} or "
            "step_cost.*.json; run `dilaserve profile` on this hardware"
        )
    shards = weight_files(directory)
    size = sum(s.stat().st_size for s in shards) / 2**30
    lines = [f"model: {directory} with {len(step_costs)} step-cost profile(s) is on this machine "
             f"({len(shards)} weight file(s), {size:.2f} GiB)"]
    return lines + [_gpu_profile_line(directory, profiles, policy, cluster)]


def _gpu_profile_line(directory: Path, profiles: Path, policy: Policy, cluster) -> str:
    import torch

    from worker.measure.profile_files import find_step_cost, hardware_name
    from worker.models.device import checkpoint_dtype, choose_device

    if not torch.cuda.is_available():
        return "no GPU on this machine: its replicas' step-cost profile is not checked here"
    device, dtype = (cluster.device, cluster.dtype) if cluster else ("auto", "auto")
    choice = choose_device(True, device, dtype, checkpoint_dtype(directory))
    if choice.device == "cpu":
        return "cluster.device is cpu: replicas run on the CPU on this GPU machine"
    hardware = hardware_name("cuda")
    path = find_step_cost(profiles, policy.worker.cache_mode, 1, choice.dtype, hardware, directory)
    return f"this machine's replicas: {choice.describe()} on {hardware}, profile {path.name}"


def _quality(policy: Policy, profiles: Path | None, model: str | None):
    """The quality profile to resolve floors on, and a note saying which (or why none)."""
    from dilaserve.core.locations import SHIPPED_MODEL_DIR
    from dilaserve.profiles.quality import QualityProfile
    from worker.measure.profile_files import QUALITY_FILE

    directory = profiles or Path(model or SHIPPED_MODEL_DIR) / "profiles"
    path = directory / QUALITY_FILE
    if not path.is_file():
        if any(c.max_accuracy_drop is not None for c in policy.classes):
            return None, f"accuracy drops not resolved here: no {path} on this machine"
        return None, "no accuracy-drop floors"
    try:
        quality = QualityProfile.load(path)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a quality profile ({type(err).__name__}: {err})") from None
    policy.check_against(quality)
    return quality, f"resolved on {quality.model}'s quality profile"
