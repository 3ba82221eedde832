from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_EOS: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "prompt_text", "prompt_ids", "max_new_tokens", "deadline_ms", "slo_class", "quality", "commit_rule", "rule_param", "temperature", "seed", "priority", "messages")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    SLO_CLASS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    COMMIT_RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_PARAM_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt_text: str
    prompt_ids: _containers.RepeatedScalarFieldContainer[int]
    max_new_tokens: int
    deadline_ms: float
    slo_class: str
    quality: QualityBounds
    commit_rule: str
    rule_param: float
    temperature: float
    seed: int
    priority: int
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, request_id: _Optional[str] = ..., prompt_text: _Optional[str] = ..., prompt_ids: _Optional[_Iterable[int]] = ..., max_new_tokens: _Optional[int] = ..., deadline_ms: _Optional[float] = ..., slo_class: _Optional[str] = ..., quality: _Optional[_Union[QualityBounds, _Mapping]] = ..., commit_rule: _Optional[str] = ..., rule_param: _Optional[float] = ..., temperature: _Optional[float] = ..., seed: _Optional[int] = ..., priority: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class QualityBounds(_message.Message):
    __slots__ = ("min_threshold", "threshold", "block_size", "min_block_size", "max_block_size")
    MIN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    min_threshold: float
    threshold: float
    block_size: int
    min_block_size: int
    max_block_size: int
    def __init__(self, min_threshold: _Optional[float] = ..., threshold: _Optional[float] = ..., block_size: _Optional[int] = ..., min_block_size: _Optional[int] = ..., max_block_size: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("partial", "final", "restarted")
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_FIELD_NUMBER: _ClassVar[int]
    partial: Partial
    final: Final
    restarted: Restarted
    def __init__(self, partial: _Optional[_Union[Partial, _Mapping]] = ..., final: _Optional[_Union[Final, _Mapping]] = ..., restarted: _Optional[_Union[Restarted, _Mapping]] = ...) -> None: ...

class Restarted(_message.Message):
    __slots__ = ("request_id", "attempt", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    attempt: int
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Partial(_message.Message):
    __slots__ = ("request_id", "block_index", "token_ids", "text", "elapsed_ms", "threshold")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    block_index: int
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    elapsed_ms: float
    threshold: float
    def __init__(self, request_id: _Optional[str] = ..., block_index: _Optional[int] = ..., token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queued_ms", "first_block_ms", "e2e_ms", "replica_e2e_ms")
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BLOCK_MS_FIELD_NUMBER: _ClassVar[int]
    E2E_MS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_E2E_MS_FIELD_NUMBER: _ClassVar[int]
    queued_ms: float
    first_block_ms: float
    e2e_ms: float
    replica_e2e_ms: float
    def __init__(self, queued_ms: _Optional[float] = ..., first_block_ms: _Optional[float] = ..., e2e_ms: _Optional[float] = ..., replica_e2e_ms: _Optional[float] = ...) -> None: ...

class Final(_message.Message):
    __slots__ = ("request_id", "text", "token_ids", "finish_reason", "deadline_met", "timings", "threshold_start", "threshold_min", "threshold_mean", "forwards", "block_size", "slo_class", "deadline_ms", "replica", "prompt_tokens")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MET_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_START_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MIN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MEAN_FIELD_NUMBER: _ClassVar[int]
    FORWARDS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    SLO_CLASS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: FinishReason
    deadline_met: bool
    timings: Timings
    threshold_start: float
    threshold_min: float
    threshold_mean: float
    forwards: int
    block_size: int
    slo_class: str
    deadline_ms: float
    replica: str
    prompt_tokens: int
    def __init__(self, request_id: _Optional[str] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., deadline_met: _Optional[bool] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., threshold_start: _Optional[float] = ..., threshold_min: _Optional[float] = ..., threshold_mean: _Optional[float] = ..., forwards: _Optional[int] = ..., block_size: _Optional[int] = ..., slo_class: _Optional[str] = ..., deadline_ms: _Optional[float] = ..., replica: _Optional[str] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClassStats(_message.Message):
    __slots__ = ("name", "ended", "met", "attainment", "target_attainment")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    MET_FIELD_NUMBER: _ClassVar[int]
    ATTAINMENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_ATTAINMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    ended: int
    met: int
    attainment: float
    target_attainment: float
    def __init__(self, name: _Optional[str] = ..., ended: _Optional[int] = ..., met: _Optional[int] = ..., attainment: _Optional[float] = ..., target_attainment: _Optional[float] = ...) -> None: ...

class StatsReply(_message.Message):
    __slots__ = ("model", "uptime_s", "queued", "running", "max_rows", "draining", "min_threshold", "max_threshold", "accepted", "rejected", "finished", "deadline_met", "expired", "cancelled", "failed", "attainment", "classes", "predicted_step_ms", "predicted_drain_ms", "load", "step_cost_error", "step_cost_samples", "step_cost_coef", "median_step_ms", "steps", "step_cost_prior_error", "backlog_steps", "tokens_per_step", "block_size", "replicas", "shed", "restarts", "step_seconds", "step_prior_seconds", "busy_seconds", "limits", "machine_scale", "machine_scale_measured")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    MIN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MET_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ATTAINMENT_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_DRAIN_MS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    STEP_COST_ERROR_FIELD_NUMBER: _ClassVar[int]
    STEP_COST_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STEP_COST_COEF_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_COST_PRIOR_ERROR_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_STEPS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SHED_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STEP_PRIOR_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUSY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SCALE_MEASURED_FIELD_NUMBER: _ClassVar[int]
    model: str
    uptime_s: float
    queued: int
    running: int
    max_rows: int
    draining: bool
    min_threshold: float
    max_threshold: float
    accepted: int
    rejected: int
    finished: int
    deadline_met: int
    expired: int
    cancelled: int
    failed: int
    attainment: float
    classes: _containers.RepeatedCompositeFieldContainer[ClassStats]
    predicted_step_ms: float
    predicted_drain_ms: float
    load: float
    step_cost_error: float
    step_cost_samples: int
    step_cost_coef: _containers.RepeatedScalarFieldContainer[float]
    median_step_ms: float
    steps: int
    step_cost_prior_error: float
    backlog_steps: float
    tokens_per_step: float
    block_size: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaStats]
    shed: int
    restarts: int
    step_seconds: float
    step_prior_seconds: float
    busy_seconds: float
    limits: RequestLimits
    machine_scale: float
    machine_scale_measured: float
    def __init__(self, model: _Optional[str] = ..., uptime_s: _Optional[float] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., max_rows: _Optional[int] = ..., draining: _Optional[bool] = ..., min_threshold: _Optional[float] = ..., max_threshold: _Optional[float] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., finished: _Optional[int] = ..., deadline_met: _Optional[int] = ..., expired: _Optional[int] = ..., cancelled: _Optional[int] = ..., failed: _Optional[int] = ..., attainment: _Optional[float] = ..., classes: _Optional[_Iterable[_Union[ClassStats, _Mapping]]] = ..., predicted_step_ms: _Optional[float] = ..., predicted_drain_ms: _Optional[float] = ..., load: _Optional[float] = ..., step_cost_error: _Optional[float] = ..., step_cost_samples: _Optional[int] = ..., step_cost_coef: _Optional[_Iterable[float]] = ..., median_step_ms: _Optional[float] = ..., steps: _Optional[int] = ..., step_cost_prior_error: _Optional[float] = ..., backlog_steps: _Optional[float] = ..., tokens_per_step: _Optional[float] = ..., block_size: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaStats, _Mapping]]] = ..., shed: _Optional[int] = ..., restarts: _Optional[int] = ..., step_seconds: _Optional[float] = ..., step_prior_seconds: _Optional[float] = ..., busy_seconds: _Optional[float] = ..., limits: _Optional[_Union[RequestLimits, _Mapping]] = ..., machine_scale: _Optional[float] = ..., machine_scale_measured: _Optional[float] = ...) -> None: ...

class RequestLimits(_message.Message):
    __slots__ = ("max_new_tokens", "max_block_size", "context_tokens", "vocab_size", "mask_token_id")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    MASK_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    max_block_size: int
    context_tokens: int
    vocab_size: int
    mask_token_id: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., max_block_size: _Optional[int] = ..., context_tokens: _Optional[int] = ..., vocab_size: _Optional[int] = ..., mask_token_id: _Optional[int] = ...) -> None: ...

class ReplicaStats(_message.Message):
    __slots__ = ("id", "target", "state", "node", "node_type", "tp", "block_size", "min_threshold", "max_threshold", "queued", "running", "max_rows", "load", "in_flight", "healthy", "error", "attainment", "predicted_step_ms", "machine_scale")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTAINMENT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_STEP_MS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SCALE_FIELD_NUMBER: _ClassVar[int]
    id: int
    target: str
    state: str
    node: int
    node_type: str
    tp: int
    block_size: int
    min_threshold: float
    max_threshold: float
    queued: int
    running: int
    max_rows: int
    load: float
    in_flight: int
    healthy: bool
    error: str
    attainment: float
    predicted_step_ms: float
    machine_scale: float
    def __init__(self, id: _Optional[int] = ..., target: _Optional[str] = ..., state: _Optional[str] = ..., node: _Optional[int] = ..., node_type: _Optional[str] = ..., tp: _Optional[int] = ..., block_size: _Optional[int] = ..., min_threshold: _Optional[float] = ..., max_threshold: _Optional[float] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., max_rows: _Optional[int] = ..., load: _Optional[float] = ..., in_flight: _Optional[int] = ..., healthy: _Optional[bool] = ..., error: _Optional[str] = ..., attainment: _Optional[float] = ..., predicted_step_ms: _Optional[float] = ..., machine_scale: _Optional[float] = ...) -> None: ...

class ThresholdRange(_message.Message):
    __slots__ = ("min", "max")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class ControlRequest(_message.Message):
    __slots__ = ("threshold_range", "drain", "replica_id")
    THRESHOLD_RANGE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    threshold_range: ThresholdRange
    drain: bool
    replica_id: int
    def __init__(self, threshold_range: _Optional[_Union[ThresholdRange, _Mapping]] = ..., drain: _Optional[bool] = ..., replica_id: _Optional[int] = ...) -> None: ...

class ControlReply(_message.Message):
    __slots__ = ("threshold_range", "draining", "in_flight")
    THRESHOLD_RANGE_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    threshold_range: ThresholdRange
    draining: bool
    in_flight: int
    def __init__(self, threshold_range: _Optional[_Union[ThresholdRange, _Mapping]] = ..., draining: _Optional[bool] = ..., in_flight: _Optional[int] = ...) -> None: ...
