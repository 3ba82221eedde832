"""From a GenerateRequest to a scheduler RequestSpec: every check, each error naming its field.

Effective settings (the rules the proto documents):
- block size: the request's, else the policy's; canvas = max_new_tokens rounded up to a multiple;
- floor: the strictest (highest) of the request's min_threshold, its class's floor (at its block
  size) and the replica's minimum threshold;
- starting threshold: the request's, else the replica's maximum, raised to the floor if below it;
- SLO deadline: the request's deadline_ms, else its class's; a gRPC deadline that is earlier wins.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

from dilaserve.core.steps import COMMIT_RULES, DecodeSettings, EngineLimits
from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy, SloClass, ThresholdRange
from dilaserve.profiles.quality import QualityProfile
from proto import dilaserve_pb2 as pb
from worker.scheduler import RequestSpec
from worker.service.events import Prepared

MAX_ID_CHARS = 128
_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces


class InvalidRequest(ValueError):
    """A request the worker cannot accept as written (-> INVALID_ARGUMENT)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class ModelFacts:
    vocab_size: int
    mask_id: int
    limits: EngineLimits


class RequestValidator:
    def __init__(
        self,
        policy: Policy,
        model: ModelFacts,
        tokenizer: Tokenizer | None,
        quality: QualityProfile | None,
    ) -> None:
        self.policy = policy
        self.model = model
        self.tokenizer = tokenizer
        self.quality = quality

    def prepare(
        self,
        req: pb.GenerateRequest,
        arrival_s: float,
        grpc_remaining_s: float | None,
        replica: ThresholdRange,
    ) -> Prepared:
        rid = request_id_of(req.request_id)
        prompt = self._prompt(req)
        slo = slo_class_of(self.policy, req.slo_class)
        block = block_size_of(req.quality, self.policy, self.model.limits.max_seq_len)
        canvas = self._canvas(req.max_new_tokens, block, len(prompt))
        floor, start = self._thresholds(req.quality, slo.floor(self.quality, block), replica)
        settings = self._settings(req, start, block)
        relative = relative_deadline_s(req, slo, grpc_remaining_s)
        priority = req.priority if req.HasField("priority") else slo.priority
        spec = RequestSpec(
            request_id=rid,
            prompt_ids=prompt,
            canvas_len=canvas,
            arrival_s=arrival_s,
            deadline_s=arrival_s + relative,
            slo_class=slo.name,
            priority=priority,
            best_effort=slo.best_effort,
            quality_floor=floor,
            block_range=self._block_range(req.quality, block, canvas),
            settings=settings,
        )
        deadline_ms = relative * 1e3 if math.isfinite(relative) else 0.0
        return Prepared(spec, slo.name, deadline_ms)

    # ---- one field at a time -----------------------------------------------------------------

    def _prompt(self, req: pb.GenerateRequest) -> tuple[int, ...]:
        check_prompt_source(req)
        if req.prompt_ids:
            vocab, mask = self.model.vocab_size, self.model.mask_id
            for i, token in enumerate(req.prompt_ids):
                if not 0 <= token < vocab:
                    raise InvalidRequest(
                        f"prompt_ids[{i}]", f"{token} is outside the vocabulary [0, {vocab})"
                    )
                if token == mask:
                    raise InvalidRequest(f"prompt_ids[{i}]", "the mask token is not a prompt token")
            ids = tuple(int(t) for t in req.prompt_ids)
            field = "prompt_ids"
        else:
            if self.tokenizer is None:
                raise InvalidRequest(
                    "prompt_text", "this model has no tokenizer; send prompt_ids instead"
                )
            try:
                ids = tuple(self.tokenizer.encode(req.prompt_text))
            except ValueError as err:
                raise InvalidRequest("prompt_text", str(err).removeprefix("prompt: ")) from None
            field = "prompt_text"
        longest = self.model.limits.max_seq_len - 1
        if len(ids) > longest:
            raise InvalidRequest(
                field,
                f"prompt is {len(ids)} tokens; this worker takes at most {longest} "
                f"(max_seq_len {self.model.limits.max_seq_len} less the canvas)",
            )
        return ids

    def _canvas(self, max_new: int, block: int, prompt_len: int) -> int:
        canvas = canvas_of(max_new, block, self.policy)
        limits = self.model.limits
        room = min(limits.max_seq_len, limits.max_tokens)
        if prompt_len + canvas > room:
            raise InvalidRequest(
                "max_new_tokens",
                f"prompt ({prompt_len}) + canvas ({canvas}: {max_new} rounded up to the block "
                f"size {block}) = {prompt_len + canvas} tokens, over this worker's limit of {room}",
            )
        return canvas

    def _thresholds(
        self, q: pb.QualityBounds, class_floor: float | None, replica: ThresholdRange
    ) -> tuple[float, float]:
        floors = [replica.min]
        if class_floor is not None:
            floors.append(class_floor)
        if q.HasField("min_threshold"):
            floors.append(_threshold(q.min_threshold, "quality.min_threshold"))
        floor = max(floors)
        start = replica.max
        if q.HasField("threshold"):
            start = _threshold(q.threshold, "quality.threshold")
        return floor, max(start, floor)

    def _block_range(self, q: pb.QualityBounds, block: int, canvas: int) -> tuple[int, int]:
        lo = q.min_block_size if q.HasField("min_block_size") else block
        hi = q.max_block_size if q.HasField("max_block_size") else block
        if not 0 < lo <= block:
            raise InvalidRequest(
                "quality.min_block_size", f"must be in [1, block size {block}], got {lo}"
            )
        if not block <= hi <= max(block, canvas):
            raise InvalidRequest(
                "quality.max_block_size",
                f"must be in [block size {block}, canvas {canvas}], got {hi}",
            )
        return lo, hi

    def _settings(self, req: pb.GenerateRequest, start: float, block: int) -> DecodeSettings:
        rule = req.commit_rule or "threshold"
        if rule not in COMMIT_RULES:
            raise InvalidRequest(
                "commit_rule", f"unknown rule {rule!r}; known: {', '.join(COMMIT_RULES)}"
            )
        param = req.rule_param if req.HasField("rule_param") else None
        if param is not None and (not math.isfinite(param) or rule == "threshold"):
            raise InvalidRequest(
                "rule_param", "must be finite and is only for the factor and topk rules"
            )
        if not math.isfinite(req.temperature) or req.temperature < 0:
            raise InvalidRequest("temperature", f"must be >= 0, got {req.temperature}")
        try:
            return DecodeSettings(
                threshold=start,
                block_size=block,
                rule=rule,
                rule_param=param,
                cache_mode=self.policy.worker.cache_mode,
                temperature=req.temperature,
                seed=req.seed,
            )
        except ValueError as err:
            raise InvalidRequest("rule_param", str(err)) from None



# ---- checks that need only the policy (the router makes them too) ------------------------------


def request_id_of(rid: str) -> str:
    """The request's id, checked; a fresh one when it is empty."""
    if not rid:
        return uuid.uuid4().hex[:16]
    if len(rid) > MAX_ID_CHARS or not _ID.match(rid):
        raise InvalidRequest(
            "request_id", f"at most {MAX_ID_CHARS} printable ASCII characters, no spaces"
        )
    return rid


def check_prompt_source(req: pb.GenerateRequest) -> None:
    """Exactly one of prompt_text and prompt_ids."""
    if req.prompt_text and req.prompt_ids:
        raise InvalidRequest("prompt_text", "give prompt_text or prompt_ids, not both")
    if not req.prompt_ids and not req.prompt_text:
        raise InvalidRequest("prompt_text", "empty prompt (give prompt_text or prompt_ids)")


def slo_class_of(policy: Policy, name: str) -> SloClass:
    try:
        return policy.slo_class(name)
    except ValueError as err:
        raise InvalidRequest("slo_class", str(err).removeprefix("slo_class: ")) from None


def block_size_of(q: pb.QualityBounds, policy: Policy, max_seq_len: int) -> int:
    if not q.HasField("block_size"):
        return policy.worker.block_size
    if not 0 < q.block_size <= max_seq_len:
        raise InvalidRequest(
            "quality.block_size", f"must be in [1, {max_seq_len}], got {q.block_size}"
        )
    return q.block_size


def canvas_of(max_new: int, block: int, policy: Policy) -> int:
    """max_new_tokens, checked against the policy, rounded up to a multiple of the block size."""
    limit = policy.worker.max_new_tokens
    if not 0 < max_new <= limit:
        raise InvalidRequest("max_new_tokens", f"must be in [1, {limit}], got {max_new}")
    return -(-max_new // block) * block


def relative_deadline_s(
    req: pb.GenerateRequest, slo: SloClass, grpc_remaining_s: float | None
) -> float:
    """The SLO deadline relative to arrival (inf: none): the request's deadline_ms, else its
    class's; a gRPC deadline that is earlier wins."""
    relative = slo.deadline_s(req.max_new_tokens)
    if req.HasField("deadline_ms"):
        if not (math.isfinite(req.deadline_ms) and req.deadline_ms > 0):
            raise InvalidRequest("deadline_ms", f"must be > 0, got {req.deadline_ms}")
        relative = req.deadline_ms / 1e3
    if grpc_remaining_s is not None:
        relative = min(relative, max(grpc_remaining_s, 0.0))
    return relative


def _threshold(value: float, field: str) -> float:
    if not (math.isfinite(value) and 0 < value <= 1):
        raise InvalidRequest(field, f"must be in (0, 1], got {value}")
    return value
