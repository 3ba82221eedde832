"""The TP command-line options: clear errors before any process starts, and `dilaserve worker
--tp 2` (rank 0 serving gRPC, rank 1 spawned) answering like a one-device worker and stopping
cleanly when its whole process group gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dilaserve.cli.main import main
from dilaserve.policy import default_policy
from tests.waiting import wait_for
from worker.client import WorkerClient
from worker.client.worker_process import READY_MARK
from worker.models.task_suites import suite_of
from worker.service.server import ServerThread
from worker.service.setup import load_worker


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


def _tp1_answers(prompts: list[str]) -> list[str]:
    server = ServerThread(load_worker(None, default_policy()))
    server.start()
    try:
        with WorkerClient(server.target) as client:
            return [client.generate(p, 32, timeout=60).text for p in prompts]
    finally:
        server.stop(grace_s=1.0)


@pytest.mark.slow
def test_worker_tp2_serves_like_tp1_and_stops_on_a_group_sigterm(tmp_path):
    suite = suite_of()
    examples = suite.heldout_set(2, tasks=suite.short_tasks)
    prompts = [ex.prompt for ex in examples]
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
            answers = [client.generate(p, 32, timeout=60).text for p in prompts]
        assert answers == _tp1_answers(prompts)  # one request at a time: the same settings
        assert sum(a == ex.answer for a, ex in zip(answers, examples)) >= len(examples) // 2
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
    wait_for(lambda: not _group_alive(worker.pid), 10.0, "the worker's process group to empty",
             poll_s=0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
