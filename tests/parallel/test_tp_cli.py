"""The TP command-line options: clear errors before any process starts, and `dilaserve worker
--tp 2` serving and stopping cleanly when its whole process group gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dilaserve.cli.main import main
from worker.client import WorkerClient
from worker.client.worker_process import READY_MARK


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["profile", "--tp", "2", "--what", "quality"], "--what"),
        (["profile", "--tp", "3"], "--tp: tensor-parallel degree 3 does not divide"),
        (["profile", "--tp", "0"], "--tp"),
        (["bench-tp", "--tp", "1"], "--tp"),
        (["worker", "--tp", "3", "--port", "0"], "--tp: tensor-parallel degree 3 does not divide"),
        (["worker", "--tp", "2", "--engine", "null", "--port", "0"], "--tp"),
        (["worker", "--device", "cuda", "--port", "0"], "--device"),
    ],
)
def test_bad_tp_arguments_are_clear_errors(argv, field, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and field in err and "Traceback" not in err


def test_worker_tp2_serves_and_stops_on_a_group_sigterm(tmp_path):
    command = [sys.executable, "-m", "dilaserve.cli.main", "worker", "--tp", "2", "--port", "0"]
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = worker.stdout.readline()
        assert READY_MARK in line, (tmp_path / "worker.log").read_text()
        target = line.split(" on ", 1)[1].split()[0]
        with WorkerClient(target) as client:
            assert client.generate("sort:3141>", 16, timeout=60).text == "1134"
        os.killpg(worker.pid, signal.SIGTERM)  # what a terminal or a supervisor sends
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        worker.stdout.close()
        log.close()
    err = (tmp_path / "worker.log").read_text()
    assert "dilaserve worker: stopped" in err and "could not send stop" not in err
    # no follower outlived it: the group empties (multiprocessing's resource tracker, the last
    # to go, leaves once the worker's end of its pipe closes)
    deadline = time.monotonic() + 10.0
    while _group_alive(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(worker.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
