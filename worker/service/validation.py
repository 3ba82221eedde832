"""From a GenerateRequest to a scheduler RequestSpec: every check, each error naming its field.

Effective settings (the rules the proto documents):
- prompt: prompt_ids as they are, prompt_text through the model's tokenizer, or messages through
  its chat template (exactly one of the three);
- limits (`RequestLimits`, one set, the router checks the same): max_new_tokens and the block size
  in range, prompt + canvas within the context, prompt ids in the vocabulary;
- block size: the request's, else the policy's; canvas = max_new_tokens rounded up to a multiple;
- floor: the strictest (highest) of the request's min_threshold, its class's floor (at its block
  size) and the replica's minimum threshold;
- starting threshold: the request's, else the replica's maximum, raised to the floor if below it;
- SLO deadline: the earliest of the request's deadline_ms, its class's deadline and the call's
  gRPC deadline, each where there is one (`relative_deadline_s`).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

from dilaserve.core.limits import RequestLimits
from dilaserve.core.steps import COMMIT_RULES, DecodeSettings, EngineLimits
from dilaserve.core.tokenizer import ChatMessage, Tokenizer
from dilaserve.policy import Policy, SloClass, ThresholdRange
from dilaserve.profiles.quality import QualityProfile
from proto import dilaserve_pb2 as pb
from worker.scheduler import RequestSpec

MAX_ID_CHARS = 128
# sampling temperatures a request may ask (0: greedy). Outside it the logits / temperature
# overflow or vanish (1e-300 gives inf, 1e39 gives a flat distribution of fp32 noise)
TEMPERATURE_RANGE = (0.01, 100.0)
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
        self.policy = policy  # replaced whole on a policy reload
        self.model = model
        self.tokenizer = tokenizer
        self.quality = quality

    @property
    def limits(self) -> RequestLimits:
        m = self.model
        return RequestLimits.of(self.policy.worker.max_new_tokens, m.limits, m.vocab_size,
                                m.mask_id)

    def prepare(
        self,
        req: pb.GenerateRequest,
        arrival_s: float,
        grpc_remaining_s: float | None,
        replica: ThresholdRange,
    ) -> RequestSpec:
        limits = self.limits
        rid = request_id_of(req.request_id)
        prompt = prompt_ids_of(req, self.tokenizer, limits)
        slo = slo_class_of(self.policy, req.slo_class)
        block = block_size_of(req.quality, self.policy, limits)
        canvas = canvas_of(req.max_new_tokens, block, limits)
        check_context(len(prompt), canvas, req.max_new_tokens, block, limits)
        floor, start = self._thresholds(req.quality, slo.floor(self.quality, block), replica)
        settings = self._settings(req, start, block)
        relative = relative_deadline_s(req, slo, grpc_remaining_s)
        priority = priority_of(req, slo)
        return RequestSpec(
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
            accuracy_budget=slo.mean_accuracy_drop,
            settings=settings,
        )

    # ---- one field at a time -----------------------------------------------------------------

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
        if param is not None and rule == "topk" and param > block:
            raise InvalidRequest("rule_param", f"topk's k must be in [1, the block size {block}], "
                                 f"got {param:g}")
        lo, hi = TEMPERATURE_RANGE
        if req.temperature != 0 and not lo <= req.temperature <= hi:
            raise InvalidRequest("temperature", f"must be 0 (greedy) or in [{lo:g}, {hi:g}], "
                                 f"got {req.temperature:g}")
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


PROMPT_FIELDS = ("prompt_text", "prompt_ids", "messages")


def prompt_field(req: pb.GenerateRequest) -> str:
    """Which of prompt_text, prompt_ids and messages carries the prompt: exactly one."""
    given = [f for f, there in zip(PROMPT_FIELDS, (req.prompt_text, req.prompt_ids,
                                                   req.messages)) if there]
    if not given:
        raise InvalidRequest("prompt_text", "empty prompt (give prompt_text, prompt_ids or "
                             "messages)")
    if len(given) > 1:
        raise InvalidRequest(given[0], f"give one of prompt_text, prompt_ids and messages, "
                             f"not both {' and '.join(given)}")
    return given[0]


def chat_messages_of(req: pb.GenerateRequest) -> list[ChatMessage]:
    out = []
    for i, m in enumerate(req.messages):
        if not m.role.strip():
            raise InvalidRequest(f"messages[{i}].role", "empty (e.g. system, user, assistant)")
        out.append(ChatMessage(m.role, m.content))
    return out


def prompt_ids_of(req: pb.GenerateRequest, tokenizer: Tokenizer | None,
                  limits: RequestLimits | None) -> tuple[int, ...]:
    """The prompt as token ids, checked against the limits (None: not known here, unchecked)."""
    field = prompt_field(req)
    if field == "prompt_ids":
        ids = tuple(int(t) for t in req.prompt_ids)
        if limits is not None:
            for i, token in enumerate(ids):
                if not 0 <= token < limits.vocab_size:
                    raise InvalidRequest(
                        f"prompt_ids[{i}]",
                        f"{token} is outside the vocabulary [0, {limits.vocab_size})")
                if token == limits.mask_token_id:
                    raise InvalidRequest(f"prompt_ids[{i}]",
                                         "the mask token is not a prompt token")
    elif tokenizer is None:
        raise InvalidRequest(field, "this model has no tokenizer; send prompt_ids instead")
    else:
        try:
            if field == "messages":
                ids = tuple(tokenizer.encode_chat(chat_messages_of(req)))
            else:
                ids = tuple(tokenizer.encode(req.prompt_text))
        except InvalidRequest:
            raise
        except ValueError as err:
            raise InvalidRequest(field, str(err).removeprefix("prompt: ")) from None
    if not ids:
        raise InvalidRequest(field, "the prompt has no tokens")
    if limits is not None and len(ids) > limits.max_prompt_tokens:
        raise InvalidRequest(field, f"prompt is {len(ids)} tokens; the limit is "
                             f"{limits.max_prompt_tokens} (context {limits.context_tokens} "
                             f"tokens, prompt + canvas)")
    return ids


def slo_class_of(policy: Policy, name: str) -> SloClass:
    try:
        return policy.slo_class(name)
    except ValueError as err:
        raise InvalidRequest("slo_class", str(err).removeprefix("slo_class: ")) from None


def block_size_of(q: pb.QualityBounds, policy: Policy, limits: RequestLimits | None) -> int:
    if not q.HasField("block_size"):
        return policy.worker.block_size
    largest = limits.max_block_size if limits is not None else policy.worker.max_new_tokens
    if not 0 < q.block_size <= largest:
        raise InvalidRequest("quality.block_size", f"must be in [1, {largest}], got {q.block_size}")
    return q.block_size


def canvas_of(max_new: int, block: int, limits: RequestLimits | None,
              policy: Policy | None = None) -> int:
    """max_new_tokens, checked against the limits (or the policy's, before the router learned
    any), rounded up to a multiple of the block size."""
    largest = limits.max_new_tokens if limits is not None else policy.worker.max_new_tokens
    if not 0 < max_new <= largest:
        raise InvalidRequest("max_new_tokens", f"must be in [1, {largest}], got {max_new}")
    return -(-max_new // block) * block


def check_context(prompt_len: int, canvas: int, max_new: int, block: int,
                  limits: RequestLimits | None) -> None:
    if limits is None or prompt_len + canvas <= limits.context_tokens:
        return
    raise InvalidRequest(
        "max_new_tokens",
        f"prompt ({prompt_len}) + canvas ({canvas}: {max_new} rounded up to the block size "
        f"{block}) = {prompt_len + canvas} tokens, over the context of {limits.context_tokens}",
    )


def relative_deadline_s(
    req: pb.GenerateRequest, slo: SloClass, grpc_remaining_s: float | None
) -> float:
    """The effective SLO deadline relative to arrival (inf: none), defined here once for the
    worker and the router: the earliest of the request's `deadline_ms`, its class's deadline
    (`deadline.ms` + `deadline.per_token_ms` x max_new_tokens) and the time left of the call's
    gRPC deadline, each where there is one. A request may tighten its class's deadline, never
    loosen it: a longer one takes a class whose deadline allows it (or a best-effort class
    without one)."""
    relative = slo.deadline_s(req.max_new_tokens)
    if req.HasField("deadline_ms"):
        if not (math.isfinite(req.deadline_ms) and req.deadline_ms > 0):
            raise InvalidRequest("deadline_ms", f"must be > 0, got {req.deadline_ms}")
        relative = min(relative, req.deadline_ms / 1e3)
    if grpc_remaining_s is not None:
        relative = min(relative, max(grpc_remaining_s, 0.0))
    return relative


def priority_of(req: pb.GenerateRequest, slo: SloClass) -> int:
    """The request's queue priority, for the worker and the router: its own `priority` when it
    set one, but never above its class's (a client may yield to its class's other requests, not
    jump ahead of another class's: priority, like the deadline, is the policy's to give)."""
    return min(req.priority, slo.priority) if req.HasField("priority") else slo.priority


def _threshold(value: float, field: str) -> float:
    if not (math.isfinite(value) and 0 < value <= 1):
        raise InvalidRequest(field, f"must be in (0, 1], got {value}")
    return value
