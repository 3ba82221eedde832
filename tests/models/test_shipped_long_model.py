"""The shipped tiny-dlm-long: LLaDA's Hugging Face layout, its own tokenizer through the
Hugging Face path, small files, and its measured profiles."""

from __future__ import annotations

import json
from pathlib import Path

from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostProfile
from worker.models.hf_tokenizer import HFTokenizer
from worker.models.long_tasks import LONG_TASKS, TASKS
from worker.models.shipped import load

MODEL_DIR = Path(__file__).resolve().parents[2] / "worker" / "models" / "shipped" / "tiny-dlm-long"


def test_it_loads_in_llada_layout_with_its_own_tokenizer():
    assert json.loads((MODEL_DIR / "config.json").read_text())["model_type"] == "llada"
    model, tok, _ = load(MODEL_DIR)
    assert model.config.name == "tiny-dlm-long"
    assert isinstance(tok, HFTokenizer) and tok.mask_id == model.config.mask_token_id
    assert tok.decode(tok.encode("xor:0110>")) == "xor:0110>"
    weights = sum(p.stat().st_size for p in MODEL_DIR.glob("*.safetensors"))
    assert weights < 3_000_000  # float16 on disk


def test_its_profiles_cover_the_grid_and_both_tp_degrees():
    profiles = MODEL_DIR / "profiles"
    quality = QualityProfile.load(profiles / "quality.json")
    assert quality.model == "tiny-dlm-long" and set(quality.reference.per_task) == set(TASKS)
    assert quality.heldout["canvas"] == {t: 128 if t in LONG_TASKS else 32 for t in TASKS}
    for block in (8, 16, 32):
        taus = [p.threshold for p in quality.threshold_points(block)]
        assert taus == [round(0.5 + 0.05 * i, 2) for i in range(10)]
    assert set(quality.reference.per_task_forwards) == set(TASKS)
    for tp in (1, 2):
        for mode in ("dual", "prefix", "none"):
            (path,) = profiles.glob(f"step_cost.*.tp{tp}.{mode}.json")
            cost = StepCostProfile.load(path)
            assert cost.model == "tiny-dlm-long" and cost.tp == tp and cost.cache_mode == mode
