"""Bad input to every command ends with exit status 2 and one line naming the file and the
fix, never a traceback; nothing bad is accepted silently; what p2phd writes is safe to share
and to serve."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2phd.config import PrepConfig
from p2phd.data.augment import Augment
from p2phd.data.prep import prepare_dataset

from helpers import TINY, TINY_REFERENCE, cli, write_reference_checkpoint

TEST = ["--device", "cpu", "--quiet"]


def one_line(code: int, out: str, *expected: str) -> None:
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    for text in expected:
        assert text in out, out


def synth(run: Path, data: Path, out: Path, *args: object) -> tuple[int, str]:
    test = data / "test"
    return cli(
        "synthesize", run, test / "label", "--inst", test / "inst", "--out", out, *TEST, *args
    )


def copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def newest(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()


# ---- run folders and checkpoints ---------------------------------------------------------
def test_a_run_that_is_a_file(tmp_path: Path, toy_data: Path) -> None:
    run = tmp_path / "run"
    run.write_text("not a folder")
    one_line(*cli("train-global", toy_data, "--run", run, *TINY), str(run), "is a file")
    one_line(*cli("train-joint", toy_data, "--run", run, *TEST), str(run), "is a file")
    one_line(*synth(run, toy_data, tmp_path / "o"), str(run), "not a p2phd run")
    one_line(*cli("encode-features", run, toy_data, *TEST), str(run), "not a p2phd run")
    one_line(*cli("cluster", run, "--quiet"), str(run), "not a run folder")
    assert run.read_text() == "not a folder"


def test_a_config_of_random_bytes(tmp_path: Path, toy_data: Path, tiny_feature_run: Path) -> None:
    run = copy(tiny_feature_run, tmp_path)
    (run / "config.json").write_bytes(os.urandom(300) + b"\xff\xfe")
    one_line(
        *cli("train-global", toy_data, "--run", run, *TINY, "--instance-feat"),
        "config.json: not a p2phd run config",
    )
    one_line(*cli("train-joint", toy_data, "--run", run, *TEST), "config.json: not a p2phd run")
    (newest(run) / "config.json").write_bytes(os.urandom(100))
    one_line(*synth(run, toy_data, tmp_path / "o"), "config.json: not a p2phd run config")


@pytest.mark.parametrize("state", ["[1, 2, 3]", '{"step": "x"}', "{", "null"])
def test_a_damaged_state_json(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path, state: str
) -> None:
    run = copy(tiny_feature_run, tmp_path)
    (newest(run) / "state.json").write_text(state)
    expected = "delete this checkpoint folder to fall back to the previous one"
    one_line(*synth(run, toy_data, tmp_path / "o"), "state.json", expected)
    one_line(
        *cli("train-global", toy_data, "--run", run, *TINY, "--instance-feat"),
        "state.json",
        expected,
    )
    shutil.rmtree(newest(run))  # as the message says: step 1 is used
    assert synth(run, toy_data, tmp_path / "o")[0] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"optim": {"G": {}}}, "optim.D: missing"),  # was a KeyError traceback in training
        ({"train_size": "abc"}, "train_size: expected a list"),  # was ignored silently
        ({"train_size": [0, 64]}, "train_size: [0, 64] is not a size"),
        ({"step": -3}, "step: -3 is not a count 0..9007199254740992"),
        ({"files": {"G.safetensors": "big"}}, "files.G.safetensors: expected int"),
        (
            {
                "imported": {
                    "nets": [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                                            []
                                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                }
            },
            "nested deeper",
        ),
        ({"stage": "mystery"}, "stage: 'mystery' is not one of"),
        ({"extra": 1}, "unknown key(s) extra"),
    ],
)
def test_state_json_is_read_by_its_schema(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path, change: dict[str, object], field: str
) -> None:
    """Every field of state.json is checked by type and value before anything uses it."""
    run = copy(tiny_feature_run, tmp_path)
    state = newest(run) / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), **change}))
    fix = "delete this checkpoint folder to fall back to the previous one"
    one_line(*synth(run, toy_data, tmp_path / "o"), "state.json", field, fix)
    one_line(*cli("train-global", toy_data, "--run", run, *TINY, "--instance-feat"), field)


def test_latest_names_only_a_checkpoint_of_its_own_run(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path
) -> None:
    run = copy(tiny_feature_run, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(tiny_feature_run, other)
    (run / "checkpoints" / "LATEST").write_text("../../other/checkpoints/step-0000002\n")
    one_line(*synth(run, toy_data, tmp_path / "o"), "LATEST", "not a checkpoint folder")
    (run / "checkpoints" / "LATEST").write_text(str(other / "checkpoints" / "step-0000002"))
    one_line(*synth(run, toy_data, tmp_path / "o"), "LATEST", "not a checkpoint folder")
    (run / "checkpoints" / "LATEST").write_text("step-0000001\n")
    assert synth(run, toy_data, tmp_path / "o")[0] == 0


# ---- synthesize ---------------------------------------------------------------------------
def test_a_32_bit_label_with_negative_ids(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path
) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    ids = np.zeros((64, 128), np.int32)
    ids[0, 0] = -1
    Image.fromarray(ids).save(labels / "bad.tif")
    inst = tmp_path / "inst"
    inst.mkdir()
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(inst / "bad.png")
    code, out = cli(
        "synthesize", tiny_feature_run, labels, "--inst", inst, "--out", tmp_path / "o", *TEST
    )
    one_line(code, out, "bad.tif", "label value -1 is negative")


@pytest.mark.parametrize("width", ["0", "-8", "3"])
def test_a_width_too_small(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path, width: str
) -> None:
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o", "--width", width),
        f"--width {width}: must be at least 16",
    )  # E has 4 downsamplings


def test_an_output_folder_that_is_a_file(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path
) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"mine")
    one_line(*synth(tiny_feature_run, toy_data, out), str(out), "is a file")
    assert out.read_bytes() == b"mine"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (os.urandom(64) + b"\xff", "not a readable JSON file"),
        (b'{"instances": {"6001": ["a", "b", "c"]}}', "a cluster index or a list of 3 numbers"),
        (b'{"instances": [1, 2]}', "'instances' must be an object"),
        (b'{"classes": {"6": [0.1, NaN, 0.2]}}', "lies outside -1..1"),
        (b'{"instances": {"6001": [Infinity, 0, 0]}}', "lies outside -1..1"),
        (b'{"instances": {"6001": [1e308, 0, 0]}}', "lies outside -1..1"),  # inf in float32
        (b'{"instances": {"6001": [true, 0, 0]}}', "a cluster index or a list of 3 numbers"),
        (b'{"instances": {"car": 1}}', "keys are ids"),
    ],
)
def test_bad_style_maps(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "styles.json"
    path.write_bytes(content)
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o", "--style-map", path),
        f"--style-map {path}",
        expected,
    )
    assert not (tmp_path / "o").exists()


def test_index_links_cannot_run_script(
    tmp_path: Path, toy_data: Path, tiny_feature_run: Path
) -> None:
    labels, inst = tmp_path / "labels", tmp_path / "inst"
    labels.mkdir()
    inst.mkdir()
    name = 'javascript:alert(1)"x'
    shutil.copy(toy_data / "test" / "label" / "toy_test_00000.png", labels / f"{name}.png")
    shutil.copy(toy_data / "test" / "inst" / "toy_test_00000.png", inst / f"{name}.png")
    code, out = cli(
        "synthesize",
        tiny_feature_run,
        labels,
        "--inst",
        inst,
        "--out",
        tmp_path / "o",
        *TEST,
        "--save-labels",
    )
    assert code == 0, out
    page = (tmp_path / "o" / "index.html").read_text()
    assert 'href="javascript%3Aalert%281%29%22x.png"' in page
    assert "javascript:" not in page.split("<body>")[1].split("<figcaption>")[0]
    assert 'src="labels/javascript%3Aalert%281%29%22x.png"' in page


# ---- data that does not fit the run ---------------------------------------------------------
def test_encode_features_checks_the_data_against_the_run(
    tmp_path: Path, toy_source: Path, tiny_feature_run: Path
) -> None:
    more = tmp_path / "more_classes"
    prepare_dataset(toy_source, more, PrepConfig(multiple=16, label_nc=12))
    run = copy(tiny_feature_run, tmp_path)
    before = (run / "features.safetensors").read_bytes()
    one_line(*cli("encode-features", run, more, *TEST), str(more), "label_nc 12", "the run's 8")
    assert (run / "features.safetensors").read_bytes() == before


# ---- import-reference appears complete or not at all ----------------------------------------
def test_a_bad_cluster_file_leaves_no_run(tmp_path: Path) -> None:
    folder = write_reference_checkpoint(tmp_path / "ckpt")
    good = (folder / "features_clustered_010.npy").read_bytes()
    (folder / "features_clustered_010.npy").write_bytes(os.urandom(200))
    run = tmp_path / "run"
    one_line(
        *cli("import-reference", folder, "--run", run, *TINY_REFERENCE, "--quiet"),
        "features_clustered_010.npy",
    )
    assert not run.exists()
    (folder / "features_clustered_010.npy").write_bytes(good)
    code, out = cli("import-reference", folder, "--run", run, *TINY_REFERENCE, "--json")
    assert code == 0, out
    assert json.loads(out)["clusters"] == 1 and (run / "clusters.safetensors").is_file()


# ---- one size rule ---------------------------------------------------------------------------
def test_one_size_rule_for_prep_training_and_synthesis(tmp_path: Path, toy_data: Path) -> None:
    """A 128x80 map at width 128, sizes in multiples of 32: 80 / 32 = 2.5 rounds up to 96 in
    prep, in the training load and in synthesize (it was 96, 64 and 64)."""
    src = tmp_path / "src"
    for role, array in (
        ("label", np.zeros((80, 128), np.uint8)),
        ("img", np.zeros((80, 128, 3), np.uint8)),
    ):
        (src / f"train_{role}").mkdir(parents=True)
        Image.fromarray(array).save(src / f"train_{role}" / "a.png")
    report = prepare_dataset(src, tmp_path / "data", PrepConfig(width=128, multiple=32))
    assert report.sizes["train"] == [128, 96]
    assert Augment(128, None, False, 32).load_size(128, 80) == (128, 96)
    run = tmp_path / "run"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--n-downsample-global",
        "5",
        "--max-steps",
        "1",
    )
    assert code == 0, out
    labels, inst = tmp_path / "labels", tmp_path / "inst"
    for folder in (labels, inst):
        folder.mkdir()
        Image.fromarray(np.zeros((80, 128), np.uint8)).save(folder / "a.png")
    code, out = cli(
        "synthesize", run, labels, "--inst", inst, "--out", tmp_path / "o", "--width", "128", *TEST
    )
    assert code == 0, out
    assert Image.open(tmp_path / "o" / "a.png").size == (128, 96)


# ---- every command checks its input files before any work ---------------------------------
MISSING = "no_such_file"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train-global", "{data}", "--run", "{tmp}/r", "--vgg-weights", MISSING], "weights fetch"),
        (["train-global", MISSING, "--run", "{tmp}/r"], "run p2phd prep first"),
        (["train-local", "{data}", "--run", "{tmp}/r", "--global", MISSING], "not a p2phd run"),
        (["encode-features", MISSING, "{data}"], "not a p2phd run"),
        (["encode-features", "{run}", MISSING], "not a prepped dataset"),
        (["cluster", MISSING], "not a run folder; pass the run"),
        (["synthesize", "{run}", MISSING, "--out", "{tmp}/o"], "pass label maps"),
        (
            ["synthesize", "{run}", "{data}/test/label", "--inst", MISSING, "--out", "{tmp}/o"],
            "pass the instance maps of --inst",
        ),
        (
            [
                "synthesize",
                "{run}",
                "{data}/test/label",
                "--inst",
                "{data}/test/inst",
                "--style-from",
                MISSING,
                "--out",
                "{tmp}/o",
            ],
            "pass the photos of --style-from",
        ),
        (
            [
                "synthesize",
                "{run}",
                "{data}/test/label",
                "--style-map",
                MISSING,
                "--out",
                "{tmp}/o",
            ],
            "not a readable JSON file",
        ),
        (["evaluate", "{run}", "{data}", "--inception", MISSING, "--out", "{tmp}/e"], "fetch"),
        (["evaluate", "{run}", "{data}", "--segmenter", MISSING, "--out", "{tmp}/e"], "not found"),
        (
            ["evaluate", "--fake", MISSING, "--real", "{data}/test/label", "--out", "{tmp}/e"],
            "no such folder of synthesized images",
        ),
        (["export", MISSING, "--out", "{tmp}/g.onnx"], "not a p2phd run"),
        (["edit", "{run}", MISSING], "pass label maps"),
        (["inspect", MISSING], "not a run folder, a prepped dataset or a label map"),
        (["import-reference", MISSING, "--run", "{tmp}/r"], "not found"),
        (["prep", "{data}", "{tmp}/d", "--class-names", MISSING], "unreadable"),
        (["prep", "{data}", "{tmp}/d", "--palette", MISSING], "not a readable file"),
    ],
)
def test_every_command_names_a_missing_input_in_one_line(
    args: list[str], expected: str, tmp_path: Path, toy_data: Path, tiny_feature_run: Path
) -> None:
    given = [a.format(data=toy_data, run=tiny_feature_run, tmp=tmp_path) for a in args]
    code, out = cli(*given, *(["--quiet"] if args[0] not in ("inspect", "edit") else []))
    one_line(code, out, MISSING, expected)
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()
