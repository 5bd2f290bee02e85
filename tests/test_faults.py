"""Faults a long job meets: kill -9 and an immediate rerun, and writes the system refuses
(disk full, file-size limit, read-only, no permission, a file where a folder should be).
Every command ends with one line and exit status 2, keeps what it wrote before, and leaves no
temporary files; training ends at once, loader workers and all."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from torch.utils.data import Dataset

import p2phd.atomic
from p2phd.data.toy import write_toy_dataset

from helpers import TINY, TINY_REFERENCE, cli, write_reference_checkpoint

TEST = ["--device", "cpu", "--quiet"]


def p2phd_process(
    *args: object, env: dict[str, str] | None = None, limit_bytes: int | None = None
) -> subprocess.Popen[str]:
    """`python -m p2phd ARGS` in its own process (with a file-size limit, as `ulimit -f`)."""

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen(
        [sys.executable, "-m", "p2phd", *map(str, args)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit,
    )


def logged_steps(run: Path) -> list[int]:
    """Steps in log.jsonl so far (a line being written is skipped)."""
    if not (run / "log.jsonl").is_file():
        return []
    steps = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            pass
    return steps


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (a trainer's loader workers inherit it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def leftovers(folder: Path) -> list[str]:
    """Temporary files and folders p2phd's writers use (hidden `.NAME.tmp-*`, `.NAME.old-*`)."""
    return sorted(str(p) for p in folder.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


@pytest.mark.slow
def test_kill_9_then_an_immediate_rerun_resumes(toy_data: Path, tmp_path: Path) -> None:
    """What torchrun --max-restarts, a scheduler or a retry loop does: three times, kill -9 the
    trainer and start it again at once; each rerun resumes (the lock died with the trainer)."""
    run, marker = tmp_path / "run", f"P2PHD_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", marker: "1"}
    args = [
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--num-workers",
        "2",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--max-steps",
        "100000",
    ]
    proc = p2phd_process(*args, env=env)
    resumed_from = []
    for _ in range(3):
        start = len(logged_steps(run))
        deadline = time.time() + 120
        while len(logged_steps(run)) < start + 3 and proc.poll() is None:
            assert time.time() < deadline, "training made no progress"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-2000:]  # not refused, not failed
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed_from.append(latest_step(run))
        proc = p2phd_process(*args, env=env)  # at once
    start, deadline = len(logged_steps(run)), time.time() + 120
    while len(logged_steps(run)) < start + 3 and proc.poll() is None:
        assert time.time() < deadline, "training made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    history = json.loads((run / "config.json").read_text())["history"]
    assert [h["event"] for h in history] == ["start", "resume", "resume", "resume"]
    assert [h["step"] for h in history[1:]] == resumed_from
    assert not processes_with(marker)  # no loader worker outlived its trainer


def latest_step(run: Path) -> int:
    return int((run / "checkpoints" / "LATEST").read_text().split("-")[1])


@pytest.mark.slow
def test_a_file_size_limit_ends_training_with_one_line(toy_data: Path, tmp_path: Path) -> None:
    """`ulimit -f` lets the run start but not write a checkpoint: one line naming the file and
    the cause, exit 2, at once (workers and all), the previous checkpoint intact."""
    run, marker = tmp_path / "run", f"P2PHD_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", marker: "1"}
    args = [
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--num-workers",
        "2",
        "--save-every",
        "2",
        "--sample-every",
        "1000",
    ]
    first = p2phd_process(*args, "--max-steps", "2", env=env)
    assert first.wait(timeout=300) == 0, first.communicate()[1]
    before = {p: p.read_bytes() for p in (run / "checkpoints" / "step-0000002").iterdir()}
    limited = p2phd_process(*args, "--max-steps", "4", env=env, limit_bytes=64 * 1024)
    _, err = limited.communicate(timeout=300)  # a hang fails here
    assert limited.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "step-0000004" in err and "cannot write (File too large)" in err, err
    assert "ulimit -f" in err
    assert latest_step(run) == 2
    assert {p: p.read_bytes() for p in (run / "checkpoints" / "step-0000002").iterdir()} == before
    assert leftovers(run) == [] and not processes_with(marker)
    rerun = p2phd_process(*args, "--max-steps", "4", env=env)  # with room again: resumes
    assert rerun.wait(timeout=300) == 0, rerun.communicate()[1]
    assert latest_step(run) == 4


@pytest.mark.slow
def test_an_unexpected_error_in_training_ends_it_at_once(toy_data: Path, tmp_path: Path) -> None:
    """A bug inside the loop (here: the step raises) is exit 1 with its traceback, and the
    process ends right away with its loader workers instead of waiting on them."""
    marker = f"P2PHD_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", marker: "1"}
    crash = (
        "import sys; import p2phd.training.gan as gan\n"
        "def boom(*a, **k): raise RuntimeError('boom')\n"
        "gan.Pix2PixHD.backward = boom\n"
        "from p2phd.cli import main; sys.argv[0] = 'p2phd'; main()\n"
    )
    args = ["train-global", toy_data, "--run", tmp_path / "run", *TINY, "--num-workers", "2"]
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", crash, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "RuntimeError: boom" in result.stderr, result.stderr
    assert time.time() - started < 60 and not processes_with(marker)


# ---- every command, every refusal --------------------------------------------------------
REFUSALS = [errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES]


def refuse_writes(monkeypatch: pytest.MonkeyPatch, code: int, after: int = 0) -> None:
    """Every file or folder p2phd puts in place after the first `after` is refused with
    OSError(code): the one place all writes pass."""
    real, calls = p2phd.atomic._commit, [0]

    def refused(tmp: Path, path: Path, *rest: bool) -> None:
        calls[0] += 1
        if calls[0] > after:
            raise OSError(code, os.strerror(code))
        real(tmp, path, *rest)

    monkeypatch.setattr(p2phd.atomic, "_commit", refused)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_refused(code: int, out: str, where: str, errno_code: int) -> None:
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert where in out and f"cannot write ({os.strerror(errno_code)})" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("code", REFUSALS, ids=errno.errorcode.get)
def test_train_refused_write(
    toy_data: Path,
    tiny_feature_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_feature_run, run)
    before = snapshot(run / "checkpoints")
    refuse_writes(monkeypatch, code, after=1)  # config.json goes in; the checkpoint does not
    result = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--instance-feat",
        "--max-steps",
        "3",
        "--sample-every",
        "1000",
    )
    assert_refused(*result, "step-0000003", code)
    assert snapshot(run / "checkpoints") == before and leftovers(run) == []
    monkeypatch.undo()
    code_again, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--instance-feat",
        "--max-steps",
        "3",
        "--sample-every",
        "1000",
    )
    assert code_again == 0, out  # the rerun resumes from step 2


@pytest.mark.parametrize("code", REFUSALS, ids=errno.errorcode.get)
def test_synthesize_refused_write(
    tiny_feature_run: Path,
    toy_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    out_dir = tmp_path / "out"
    test = toy_data / "test"
    args = [
        "synthesize",
        tiny_feature_run,
        test / "label",
        "--inst",
        test / "inst",
        "--out",
        out_dir,
        *TEST,
    ]
    assert cli(*args)[0] == 0
    before = snapshot(out_dir)
    refuse_writes(monkeypatch, code)
    assert_refused(*cli(*args, "--seed", "3"), str(out_dir), code)
    assert snapshot(out_dir) == before and leftovers(out_dir) == []


@pytest.mark.parametrize("code", REFUSALS, ids=errno.errorcode.get)
def test_encode_and_cluster_refused_write(
    tiny_feature_run: Path,
    toy_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_feature_run, run)
    before = snapshot(run)
    refuse_writes(monkeypatch, code)
    assert_refused(*cli("encode-features", run, toy_data, *TEST), "features.safetensors", code)
    assert_refused(*cli("cluster", run, "--k", "3", "--quiet"), "clusters.safetensors", code)
    assert snapshot(run) == before and leftovers(run) == []


def test_a_read_only_folder_refuses_the_cleanup_too(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only file system even removing the temporary file is refused: the error
    stays the write's one line, not a traceback from the cleanup."""
    run = tmp_path / "run"
    shutil.copytree(tiny_feature_run, run)
    real_unlink = Path.unlink

    def read_only_unlink(self: Path, missing_ok: bool = False) -> None:
        if self.is_relative_to(tmp_path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    refuse_writes(monkeypatch, errno.EROFS)
    code = errno.EROFS
    assert_refused(*cli("encode-features", run, toy_data, *TEST), "features.safetensors", code)
    assert_refused(*cli("cluster", run, "--k", "3", "--quiet"), "clusters.safetensors", code)
    assert_refused(*cli("export", run, "--out", tmp_path / "g.onnx", "--quiet"), "g.onnx", code)


@pytest.mark.parametrize("code", REFUSALS, ids=errno.errorcode.get)
def test_import_and_prep_refused_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    folder = write_reference_checkpoint(tmp_path / "ckpt")
    src = tmp_path / "src"
    write_toy_dataset(src, n_train=2, n_test=0, height=32, width=64, seed=0)
    refuse_writes(monkeypatch, code)
    assert_refused(
        *cli("import-reference", folder, "--run", tmp_path / "run", "--quiet", *TINY_REFERENCE),
        "run",
        code,
    )
    assert_refused(*cli("prep", src, tmp_path / "data", "--quiet"), "data", code)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "src"]  # nothing half-made


@pytest.mark.parametrize("command", ["train", "synthesize", "import", "prep", "toy"])
def test_a_file_where_a_folder_should_be(
    command: str, tiny_feature_run: Path, toy_data: Path, toy_source: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    inside = blocker / "out"
    test = toy_data / "test"
    runs: dict[str, Callable[[], tuple[int, str]]] = {
        "train": lambda: cli("train-global", toy_data, "--run", inside, *TINY, "--max-steps", "1"),
        "synthesize": lambda: cli(
            "synthesize",
            tiny_feature_run,
            test / "label",
            "--inst",
            test / "inst",
            "--out",
            inside,
            *TEST,
        ),
        "import": lambda: cli(
            "import-reference", tmp_path / "ckpt", "--run", inside, *TINY_REFERENCE
        ),
        "prep": lambda: cli("prep", toy_source, inside, "--quiet"),
        "toy": lambda: cli("toy", inside, "--train", "1", "--test", "0", "--quiet"),
    }
    if command == "import":
        write_reference_checkpoint(tmp_path / "ckpt")
    code, out = runs[command]()
    assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert str(blocker) in out, out
    assert any(why in out for why in ("Not a directory", "is a file", "a file is in the way")), out
    assert blocker.read_text() == "in the way"


def test_written_files_honour_the_umask(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        out_dir = tmp_path / "out"
        test = toy_data / "test"
        assert (
            cli(
                "synthesize",
                tiny_feature_run,
                test / "label",
                "--inst",
                test / "inst",
                "--out",
                out_dir,
                *TEST,
            )[0]
            == 0
        )
        run = tmp_path / "run"
        code, out = cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")
        assert code == 0, out
    finally:
        os.umask(old)
    files = [p for p in [*out_dir.rglob("*"), *run.rglob("*")] if p.is_file()]
    folders = [p for p in [*out_dir.rglob("*"), *run.rglob("*")] if p.is_dir()]
    assert files and folders
    assert {oct(p.stat().st_mode & 0o777) for p in files if p.name != ".lock"} == {"0o644"}
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o755"}


def test_a_refused_log_line_leaves_the_log_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2phd.atomic import append_line
    from p2phd.errors import WriteError

    log = tmp_path / "log.jsonl"
    append_line(log, '{"step": 1}')
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:  # the disk fills up mid-line
        monkeypatch.setattr(os, "write", full)
        return real_write(fd, data[: len(data) // 2])

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(WriteError, match="log.jsonl: cannot write"):
        append_line(log, '{"step": 2, "g_gan": 0.25}')
    monkeypatch.undo()
    assert log.read_text() == '{"step": 1}\n'


class _SlowItems(Dataset):  # type: ignore[type-arg]
    """Item 0 at once, the others in 30 s: workers are busy when the loader is shut down."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        if index:
            time.sleep(30)
        return index


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and prctl")
def test_closing_the_batches_ends_busy_loader_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch gives up on a worker that does not stop within its timeout, and our workers
    ignore its SIGTERM: one was left running, and at exit multiprocessing waited for it
    forever (the suite passed, then CI ran out its 90 minutes)."""
    import functools
    import multiprocessing
    import os

    from torch.utils.data import DataLoader, _utils

    from p2phd.training.process import worker_init
    from p2phd.training.trainer import _closing_batches

    monkeypatch.setattr(_utils, "MP_STATUS_CHECK_INTERVAL", 0.2)  # torch's join timeout
    init = functools.partial(worker_init, trainer=os.getpid())
    batches = _closing_batches(DataLoader(_SlowItems(), num_workers=2, worker_init_fn=init))
    assert next(batches).tolist() == [0]
    workers = [p for p in multiprocessing.active_children() if p.is_alive()]
    assert len(workers) >= 2
    started = time.monotonic()
    batches.close()
    assert [p.pid for p in workers if p.is_alive()] == []
    assert time.monotonic() - started < 10
