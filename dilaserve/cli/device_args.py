"""`--device` and `--dtype` for the commands that load a model here (`worker`, `generate`)."""

from __future__ import annotations

import argparse

from worker.models.device import DEVICES, DTYPES, DeviceChoice


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto (default): cuda when torch sees a GPU here, else cpu; with --tp > 1, rank r "
        "runs on cuda:r (NCCL) or on the CPU (gloo)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="auto (default): on cuda the checkpoint's config.json torch_dtype, bfloat16 without "
        "one (LLaDA's); on cpu float32. The step-cost profile is looked up in this dtype",
    )


def device_choice(args: argparse.Namespace) -> DeviceChoice:
    """The device and dtype `--device`/`--dtype` and this machine give `--model`; a cuda request
    without CUDA is an error naming the flag."""
    import torch

    from dilaserve.core.locations import resolve_model_dir
    from worker.models.device import checkpoint_dtype, choose_device, require_device

    model_dir = resolve_model_dir(args.model)
    choice = choose_device(torch.cuda.is_available(), args.device, args.dtype,
                           checkpoint_dtype(model_dir))
    require_device(choice.device, "--device")
    return choice
