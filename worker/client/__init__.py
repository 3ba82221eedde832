"""Python clients of the Generate service: `WorkerClient` (blocking) and `AsyncWorkerClient`."""

from worker.client.async_client import AsyncWorkerClient
from worker.client.messages import Generation, WorkerError, control_request, generate_request
from worker.client.sync_client import WorkerClient

__all__ = [
    "AsyncWorkerClient",
    "Generation",
    "WorkerClient",
    "WorkerError",
    "control_request",
    "generate_request",
]
