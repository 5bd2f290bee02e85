"""Every JSON file p2phd reads passes one bounded reader (p2phd.jsonfile): a file nested too
deep, too large or of the wrong shape is one line naming the file and the field, exit status
2, never a RecursionError, TypeError or KeyError traceback (issue 23, point 2). dataset.json
and state.json have their own cases in test_prep and test_bad_input."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from p2phd.errors import ConfigError
from p2phd.eval.segmenter import label_lookup
from p2phd.training.samples import read_log

from helpers import TINY, cli, newest, one_line, synth

DEEP = "[" * 100_000 + "]" * 100_000
TEST = ["--device", "cpu", "--quiet"]


@pytest.fixture
def run(tiny_feature_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(tiny_feature_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (DEEP, "nested deeper than 64 levels"),
        ("[1, 2]", "expected an object"),
        ('{"config": 7, "history": []}', "config: expected an object"),
        ('{"config": {}, "history": ["a string"]}', "a 'history' of objects"),
    ],
)
def test_config_json(run: Path, toy_data: Path, tmp_path: Path, content: str, field: str) -> None:
    """The run's config.json (read by inspect and training) and a checkpoint's (read by
    everything that renders)."""
    (run / "config.json").write_text(content)
    one_line(*cli("inspect", run), "config.json: not a p2phd run config", field)
    one_line(*cli("train-global", toy_data, "--run", run, *TINY), "config.json", field)
    (newest(run) / "config.json").write_text(content)
    one_line(*synth(run, toy_data, tmp_path / "o"), "config.json: not a p2phd run config", field)


def test_a_key_given_twice_is_refused(run: Path, toy_data: Path, tmp_path: Path) -> None:
    """Corpus: a state.json holding "step" twice was read with the last one, silently."""
    path = newest(run) / "state.json"
    text = path.read_text()
    assert text.lstrip().startswith("{")
    path.write_text(text.replace("{", '{"step": 999999,', 1))
    one_line(*synth(run, toy_data, tmp_path / "o"), str(path), "key 'step' appears twice")


def test_export_writes_only_onnx_files(run: Path, tmp_path: Path) -> None:
    """Corpus: export --out notes.txt overwrote the file with a model."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    one_line(*cli("export", run, "--out", notes), f"--out {notes}: export writes an ONNX file")
    assert notes.read_text() == "mine"


def test_a_mistyped_config_field_is_named(run: Path, toy_data: Path, tmp_path: Path) -> None:
    record = json.loads((newest(run) / "config.json").read_text())
    record["config"]["net"]["ngf"] = "abc"
    (newest(run) / "config.json").write_text(json.dumps(record))
    one_line(*synth(run, toy_data, tmp_path / "o"), "config.json", "net.ngf", "'abc'")


@pytest.mark.parametrize("which", ["features.json", "clusters.json"])
@pytest.mark.parametrize("content", [DEEP, '{"classes": [1, 2]}', '{"classes": {"x": "y"}}'])
def test_a_damaged_bank_summary_is_shown_not_a_traceback(
    run: Path, which: str, content: str
) -> None:
    """inspect is for looking: it says the summary is unreadable and what rewrites it."""
    (run / which).write_text(content)
    code, out = cli("inspect", run)
    again = "encode-features" if which == "features.json" else "cluster"
    assert code == 0 and "Traceback" not in out, out
    assert f"{which} unreadable" in out and f"run {again} again" in " ".join(out.split()), out


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (DEEP, "nested deeper than 64 levels"),
        ('{"instances": {"1": [NaN, 0, 0]}}', "lies outside -1..1"),
        ('{"instances": ["a"]}', "'instances' must be an object"),
    ],
)
def test_style_maps(run: Path, toy_data: Path, tmp_path: Path, content: str, field: str) -> None:
    style = tmp_path / "style.json"
    style.write_text(content)
    one_line(*synth(run, toy_data, tmp_path / "o", "--style-map", style), "--style-map", field)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (DEEP, "nested deeper than 64 levels"),
        ('["a", "b"]', "expected an object of label id: class"),
        ('{"x": 1}', "'x': a label id is a number in 0..255"),
        ('{"300": 1}', "'300': a label id is a number in 0..255"),
        ('{"3": "car"}', "3: a class is a number in 0..255"),
        ('{"3": 256}', "3: a class is a number in 0..255"),
    ],
)
def test_label_map_files(tmp_path: Path, content: str, field: str) -> None:
    mapping = tmp_path / "map.json"
    mapping.write_text(content)
    with pytest.raises(ConfigError, match=f"--label-map {mapping}") as caught:
        label_lookup(str(mapping), 8)
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("content", "field"),
    [(DEEP, "nested deeper than 64 levels"), ('["sky", 3]', "must hold strings only")],
)
def test_class_name_files(toy_source: Path, tmp_path: Path, content: str, field: str) -> None:
    names = tmp_path / "names.json"
    names.write_text(content)
    code, out = cli("prep", toy_source, tmp_path / "data", "--class-names", names, "--quiet")
    one_line(code, out, f"--class-names {names}", field)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("content", [DEEP, '{"classes": 7}', '{"classes": ["sky", 1]}', "[]"])
def test_a_damaged_toy_json_is_not_ours(toy_source: Path, tmp_path: Path, content: str) -> None:
    """A source whose toy.json cannot be read is prepped as any other: classes inferred."""
    src = tmp_path / "src"
    shutil.copytree(toy_source, src)
    (src / "toy.json").write_text(content)
    code, out = cli("prep", src, tmp_path / "data", "--quiet", "--json")
    assert code == 0, out
    assert json.loads((tmp_path / "data" / "dataset.json").read_text())["class_names"] == []


def test_log_lines_of_another_shape_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        {"step": 1, "g_gan": 0.5, "stage": "global"},
        DEEP,
        "[1]",
        {"step": "2", "g_gan": 0.4},
        {"step": 3, "g_gan": "x", "d_real": 0.25},
    ]
    log.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    assert read_log(log) == [{"step": 1, "g_gan": 0.5}, {"step": 3, "d_real": 0.25}]


def test_an_editor_request_nested_too_deep(tiny_feature_run: Path, toy_data: Path) -> None:
    import threading

    from p2phd.edit.editor import Editor
    from p2phd.edit.server import TOKEN_HEADER, EditServer
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer

    editor = Editor(
        Synthesizer(Run.open(tiny_feature_run), DeviceOptions("cpu")),
        [toy_data / "test" / "label"],
        [toy_data / "test" / "inst"],
    )
    server = EditServer(editor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = urllib.request.Request(
            server.url + "api/open",
            data=DEEP.encode(),
            headers={"Content-Type": "application/json", TOKEN_HEADER: server.token},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 400
        assert "nested deeper than 64 levels" in json.loads(caught.value.read())["error"]
    finally:
        server.shutdown()
        server.server_close()
        editor.close()
