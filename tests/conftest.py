"""Shared fixtures: toy scenes prepped once per session, tiny training options."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
import torch

from p2phd.config import PrepConfig
from p2phd.data.prep import prepare_dataset
from p2phd.data.toy import write_toy_dataset

# Every process the suite starts inherits this mark, so that what is still running at the end
# is found, even where it left the process tree (a daemon's double fork). Forked children that
# exec nothing (loader workers) do not show it: pytest itself started without the mark.
SESSION_MARK = ("P2PHD_TEST_SESSION", uuid.uuid4().hex)
os.environ[SESSION_MARK[0]] = SESSION_MARK[1]
# multiprocessing's helpers end when the suite does: not leftovers of a test.
HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A process a test left running can hold CI's output pipe open, and a thread that does
    not end holds the interpreter's exit: either one waits out CI's whole limit without a
    word. Name and stop the first; arm a dump of every thread's stack for the second."""
    if sys.platform.startswith("linux"):
        from helpers import marked_processes

        left = {  # a zombie has exited and holds nothing
            pid: cmd
            for pid, (state, cmd) in marked_processes("=".join(SESSION_MARK)).items()
            if state != "Z"
        }
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        strays = {pid: cmd for pid, cmd in left.items() if not any(h in cmd for h in HELPERS)}
        if strays and reporter is not None:
            reporter.write("\n")
            reporter.write_sep("=", "processes tests left running (killed now)")
            for pid, command in strays.items():
                reporter.write_line(f"{pid}: {command[:200]}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    faulthandler.dump_traceback_later(300, exit=True, file=sys.__stderr__)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Bitwise-reproducible CPU numerics, and no oversubscription on 2-core CI."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _own_weights_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test sees the user's fetched weights (`p2phd weights fetch`): an empty cache."""
    monkeypatch.setenv("P2PHD_HOME", str(tmp_path_factory.mktemp("p2phd_home")))


@pytest.fixture(scope="session")
def toy_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "src"
    write_toy_dataset(out, n_train=8, n_test=2, height=64, width=128, seed=0)
    return out


@pytest.fixture(scope="session")
def toy_data(toy_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("prepped") / "data"
    prepare_dataset(toy_source, data, PrepConfig(multiple=16))
    return data


@pytest.fixture(scope="session")
def tiny_feature_run(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained 2 steps with instance features, encoded and clustered (k 2), with
    checkpoints at steps 1 and 2. Tests that change it work on a copy."""
    from helpers import TINY, cli

    run = tmp_path_factory.mktemp("feature_run") / "run"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--instance-feat",
        "--max-steps",
        "2",
        "--save-every",
        "1",
    )
    assert code == 0, out
    assert cli("encode-features", run, toy_data, "--device", "cpu", "--quiet")[0] == 0
    assert cli("cluster", run, "--k", "2", "--quiet")[0] == 0
    return run
