"""A `dilaserve worker` in a subprocess on 127.0.0.1, for benchmarks: start, find its port, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

READY_MARK = "dilaserve worker: serving"


class WorkerProcess:
    """`with WorkerProcess([...worker flags...], log) as w: ... w.target ...`"""

    def __init__(self, flags: list[str], log_path: Path, start_timeout_s: float = 120.0) -> None:
        self.flags = flags
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.target = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> WorkerProcess:
        self._log = open(self.log_path, "a")  # closed by _stop
        command = [sys.executable, "-m", "dilaserve.cli.main", "worker", "--port", "0"]
        self._proc = subprocess.Popen(
            command + self.flags,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if READY_MARK not in line:
            self._stop()
            raise RuntimeError(f"the worker did not start ({line.strip()!r}); see {self.log_path}")
        self.banner = line.strip()
        self.target = line.split(" on ", 1)[1].split()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout:
            proc.stdout.close()
        self._log.close()
