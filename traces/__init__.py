"""Workload traces: loaders (Azure CSV, Mooncake JSONL), synthetic arrivals, transformations, and
jobs (canvas + deadline per request)."""

from traces.jobs import CanvasPolicy, Job, prepare_jobs
from traces.loaders import load_azure_csv, load_mooncake_jsonl, load_trace
from traces.records import DEFAULT_CLASS, Trace, TraceRequest
from traces.synthetic import Empirical, Fixed, LogNormal, Uniform, parse_lengths, synthetic_trace
from traces.transform import assign_classes, clip_lengths, scale_rate, window

__all__ = [
    "DEFAULT_CLASS", "CanvasPolicy", "Empirical", "Fixed", "Job", "LogNormal", "Trace",
    "TraceRequest", "Uniform", "assign_classes", "clip_lengths", "load_azure_csv",
    "load_mooncake_jsonl", "load_trace", "parse_lengths", "prepare_jobs", "scale_rate",
    "synthetic_trace", "window",
]
