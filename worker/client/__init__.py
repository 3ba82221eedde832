"""Python clients of the Generate service: `WorkerClient` (blocking) and `AsyncWorkerClient`,
plaintext or over TLS (`ClientTls`), with a bearer token or without."""

from worker.client.async_client import AsyncWorkerClient
from worker.client.connection import ClientTls
from worker.client.messages import Generation, WorkerError, control_request, generate_request
from worker.client.sync_client import WorkerClient

__all__ = [
    "AsyncWorkerClient",
    "ClientTls",
    "Generation",
    "WorkerClient",
    "WorkerError",
    "control_request",
    "generate_request",
]
