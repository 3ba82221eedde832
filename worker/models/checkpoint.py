"""Checkpoint directories: config.json + *.safetensors (+ tokenizer.json).

Two formats are read:
- dilaserve's own (config.json has "format": "dilaserve"; tensor names are this package's modules);
- LLaDA-8B's Hugging Face layout (config.json has model_type "llada"; keys d_model, n_heads, ...;
  tensors named model.transformer.blocks.N.q_proj.weight, ...), so a downloaded LLaDA-8B-Instruct
  directory loads as it is. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from worker.models.config import ModelConfig
from worker.models.safetensors_file import SafetensorsFile
from worker.models.tokenizer import CharTokenizer
from worker.models.transformer import DiffusionTransformer, Reduce, RotaryTable

WEIGHTS_FILE = "model.safetensors"

# LLaDA tensor name -> ours; {i} is the layer index.
_LLADA_LAYER_NAMES = {
    "attn_norm.weight": "attn_norm.weight",
    "q_proj.weight": "attn.q_proj.weight",
    "k_proj.weight": "attn.k_proj.weight",
    "v_proj.weight": "attn.v_proj.weight",
    "attn_out.weight": "attn.o_proj.weight",
    "ff_norm.weight": "mlp_norm.weight",
    "ff_proj.weight": "mlp.gate_proj.weight",
    "up_proj.weight": "mlp.up_proj.weight",
    "ff_out.weight": "mlp.down_proj.weight",
}
_LLADA_TOP_NAMES = {
    "wte.weight": "embed.weight",
    "ln_f.weight": "final_norm.weight",
    "ff_out.weight": "lm_head.weight",
}
_LLADA_PREFIX = "model.transformer."


def read_config(directory: Path) -> tuple[ModelConfig, str]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"model: no config.json in {directory}")
    data = json.loads(path.read_text())
    if data.get("format") == "dilaserve":
        return ModelConfig.from_dict(data), "dilaserve"
    if data.get("model_type") == "llada" or "d_model" in data:
        return _llada_config(data, Path(directory).name), "llada"
    raise ValueError(f"model: {path} is neither a dilaserve nor a LLaDA config")


def _llada_config(data: dict, name: str) -> ModelConfig:
    try:
        n_heads = data["n_heads"]
        return ModelConfig(
            vocab_size=data.get("embedding_size") or data["vocab_size"],
            hidden_size=data["d_model"],
            num_layers=data["n_layers"],
            num_heads=n_heads,
            num_kv_heads=data.get("n_kv_heads") or n_heads,
            intermediate_size=data.get("mlp_hidden_size") or data["mlp_ratio"] * data["d_model"],
            max_seq_len=data.get("max_sequence_length", 4096),
            mask_token_id=data.get("mask_token_id", 126336),
            eos_token_id=data.get("eos_token_id", 126081),
            pad_token_id=data.get("pad_token_id", 126081),
            rope_theta=data.get("rope_theta", 10000.0),
            rms_norm_eps=data.get("rms_norm_eps", 1e-5),
            tie_embeddings=bool(data.get("weight_tying", False)),
            name=name,
        )
    except KeyError as missing:
        raise ValueError(f"model: LLaDA config.json lacks {missing}") from None


def _llada_to_ours(key: str) -> str | None:
    if not key.startswith(_LLADA_PREFIX):
        return None
    rest = key[len(_LLADA_PREFIX) :]
    if rest in _LLADA_TOP_NAMES:
        return _LLADA_TOP_NAMES[rest]
    parts = rest.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[2] in _LLADA_LAYER_NAMES:
        return f"blocks.{parts[1]}.{_LLADA_LAYER_NAMES[parts[2]]}"
    return None


# Reads one tensor from an open safetensors file: (file, its key, our name) -> tensor. The default
# reads it whole; a tensor-parallel rank reads only its slice (worker/parallel/loading.py).
TensorReader = Callable[[Any, str, str], torch.Tensor]
INDEX_FILE = "model.safetensors.index.json"


def _read_whole(f: Any, key: str, ours: str) -> torch.Tensor:
    return f.get_tensor(key)


def weight_files(directory: Path) -> list[Path]:
    """The checkpoint's safetensors files; a clear error, before anything is allocated, when there
    are none or when its index names shards that are not there."""
    shards = sorted(directory.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"model: no *.safetensors in {directory} (config.json alone: "
                                f"the weights were not copied or downloaded)")
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            named = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, AttributeError):
            raise ValueError(f"model: {index} has no weight_map") from None
        absent = sorted(named - {s.name for s in shards})
        if absent:
            raise FileNotFoundError(
                f"model: checkpoint in {directory} lacks {len(absent)} of the {len(named)} "
                f"shards its {INDEX_FILE} names: {', '.join(absent[:3])}")
    return shards


def empty_model(cfg: ModelConfig, shards: int = 1, reduce: Reduce | None = None
                ) -> DiffusionTransformer:
    """The model's structure with no storage (meta tensors): loading assigns every weight, so
    nothing is allocated or randomly initialised twice."""
    with torch.device("meta"):
        return DiffusionTransformer(cfg, shards=shards, reduce=reduce)


def load_model(
    directory: Path | str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> DiffusionTransformer:
    directory = Path(directory)
    cfg, fmt = read_config(directory)
    weight_files(directory)
    return load_into(empty_model(cfg), directory, fmt, dtype, device)


def load_into(
    model: DiffusionTransformer,
    directory: Path,
    fmt: str,
    dtype: torch.dtype,
    device: str | torch.device,
    read: TensorReader = _read_whole,
) -> DiffusionTransformer:
    """Fill `model` (built from this directory's config, best with `empty_model`) from its
    safetensors files, tensor by tensor: each is read, checked, moved and cast, and replaces the
    model's placeholder before the next is read, so the peak is the final weights plus one."""
    device = torch.device(device)
    expected = {name: p.shape for name, p in model.named_parameters(remove_duplicate=False)}
    loaded: set[str] = set()
    for shard in weight_files(directory):
        with SafetensorsFile(shard) as f:
            for key in f.keys():
                ours = key if fmt == "dilaserve" else _llada_to_ours(key)
                if ours is None or ours not in expected:
                    continue
                tensor = read(f, key, ours)
                if tensor.shape != expected[ours]:
                    raise ValueError(
                        f"model: {key} has shape {tuple(tensor.shape)}, "
                        f"config implies {tuple(expected[ours])}"
                    )
                # on a GPU: copy in the file's dtype, cast there (faster, and the host holds
                # one tensor at a time)
                _assign(model, ours, tensor.to(device).to(dtype))
                del tensor
                loaded.add(ours)
    if model.config.tie_embeddings:
        if "lm_head.weight" not in loaded and "embed.weight" in loaded:
            loaded.add("lm_head.weight")
        model.lm_head.weight = model.embed.weight
    missing = sorted(set(expected) - loaded)
    if missing:
        raise ValueError(
            f"model: checkpoint in {directory} lacks {len(missing)} tensors, first {missing[:3]}"
        )
    cfg = model.config
    model.rotary = RotaryTable(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta).to(device)
    return model.eval()


def _assign(model: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner)
    module._parameters[attr] = torch.nn.Parameter(tensor)


def save_model(
    model: DiffusionTransformer, directory: Path | str, tokenizer: CharTokenizer | None = None
) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / "config.json")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight")
    save_file(state, str(directory / WEIGHTS_FILE))
    if tokenizer is not None:
        tokenizer.save(directory / "tokenizer.json")


def save_llada_format(model: DiffusionTransformer, directory: Path | str) -> None:
    """Write a model in LLaDA's HF layout: LLaDA-8B-Instruct's config.json keys, two safetensors
    shards and their index (tests and `dilaserve tiny-checkpoint`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    config = {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"], "attention_dropout": 0.0,
        "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama",
        "d_model": cfg.hidden_size, "embedding_dropout": 0.0, "embedding_size": cfg.vocab_size,
        "eos_token_id": cfg.eos_token_id, "flash_attention": False, "include_bias": False,
        "include_qkv_bias": False, "init_device": "meta", "init_fn": "mitchell",
        "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms",
        "layer_norm_with_affine": True, "mask_token_id": cfg.mask_token_id,
        "max_sequence_length": cfg.max_seq_len, "mlp_hidden_size": cfg.intermediate_size,
        "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None,
        "n_heads": cfg.num_heads, "n_kv_heads": cfg.num_kv_heads, "n_layers": cfg.num_layers,
        "pad_token_id": cfg.pad_token_id, "precision": "amp_bf16", "residual_dropout": 0.0,
        "rms_norm_eps": cfg.rms_norm_eps, "rope": True, "rope_full_precision": True,
        "rope_theta": cfg.rope_theta, "scale_logits": False, "use_cache": False,
        "vocab_size": cfg.vocab_size, "weight_tying": cfg.tie_embeddings,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    ours_to_llada = {
        f"blocks.{i}.{ours}": f"{_LLADA_PREFIX}blocks.{i}.{theirs}"
        for i in range(cfg.num_layers)
        for theirs, ours in _LLADA_LAYER_NAMES.items()
    }
    ours_to_llada.update(
        {ours: _LLADA_PREFIX + theirs for theirs, ours in _LLADA_TOP_NAMES.items()}
    )
    state = {ours_to_llada[k]: v.detach().contiguous() for k, v in model.state_dict().items()}
    # two shards and their index, as real multi-file checkpoints come
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half],
              "model-00002-of-00002.safetensors": keys[half:]}
    weight_map = {}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(directory / name))
        weight_map.update({k: name for k in names})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
