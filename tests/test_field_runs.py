"""Training, synthesizing and scoring on measured fields (issue 20): the run records the
data's mapping, augments without flips, shows fields in colour maps, and synthesize and
evaluate work in physical units, in the input's format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from p2phd.config import FieldScale
from p2phd.data.augment import rotate_field
from p2phd.data.fields import read_field, read_fits
from p2phd.data.toy_fields import write_field_toy
from p2phd.eval.field_metrics import Sums, bin_mean, pearson, psnr, ssim
from p2phd.synth.run import Run
from p2phd.synth.synthesizer import Synthesizer

from helpers import TINY, cli, one_line

fits = pytest.importorskip("astropy.io.fits")


@pytest.fixture(scope="module")
def field_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fields")
    write_field_toy(
        root / "src", n_train=4, n_test=2, height=32, width=64, seed=0, file_format="fits"
    )
    code, out = cli(
        "prep", root / "src", root / "data", "--in-range", "-3000,3000", "--out-range",
        "-250,250", "--in-units", "G", "--out-units", "a.u.", "--multiple", "16", "--quiet",
    )  # fmt: skip
    assert code == 0, out
    return root


@pytest.fixture(scope="module")
def field_run(field_data: Path) -> Path:
    run = field_data / "run"
    code, out = cli(
        "train-global", field_data / "data", "--run", run, *TINY, "--max-steps", "2",
        "--sample-every", "2", "--rotate", "30",
    )  # fmt: skip
    assert code == 0, out
    return run


def test_the_run_records_the_mapping_and_leaves_flips_off(field_run: Path) -> None:
    config = json.loads((field_run / "config.json").read_text())["config"]
    data = json.loads((field_run.parent / "data" / "dataset.json").read_text())
    assert config["net"]["fields"] == data["fields"]
    assert config["net"]["input_nc"] == 1 and config["net"]["output_nc"] == 1
    assert config["data"]["flip"] is False and config["data"]["rotate"] == 30
    assert config["loss"]["vgg_loss"] is False


def test_samples_show_fields_in_a_colour_map_with_bars(field_run: Path) -> None:
    sample = np.asarray(Image.open(field_run / "samples" / "step-0000002.png").convert("RGB"))
    # input | bar, fake | target | bar: 64 + 4 + 84, then 12, then 64 + 4 + 64 + 4 + 84
    assert sample.shape == (32, 64 + 4 + 84 + 12 + 64 + 4 + 64 + 4 + 84, 3)
    picture = sample[:, :64].astype(int)
    assert (np.abs(picture[..., 0] - picture[..., 2]) > 40).mean() > 0.3  # red/blue: diverging
    assert "input | synthesized | target" in (field_run / "samples" / "index.html").read_text()


def test_rotation_turns_the_field_in_pixel_space() -> None:
    values = np.random.default_rng(0).normal(size=(2, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(rotate_field(values, 90, 0.0), np.rot90(values, 1, (1, 2)),
                               atol=1e-5)  # fmt: skip
    line = np.zeros((1, 16, 32), np.float32)
    line[0, 7:9, :] = 1  # a horizontal bar 2 px thick through the centre of a 32x16 field
    upright = rotate_field(line, 90, 0.0)[0] > 0.5
    assert upright[:, 15:17].all() and upright.sum() == 32  # vertical, 2 px: not stretched
    turned = rotate_field(np.ones((1, 16, 32), np.float32), 45, -1.0)
    assert turned[0, 8, 16] == pytest.approx(1.0) and turned[0, 0, 0] == pytest.approx(-1.0)


def test_rotate_is_refused_for_label_maps(tmp_path: Path, toy_data: Path) -> None:
    code, out = cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, "--rotate", "10")
    assert code == 2 and "--rotate" in out and "measured fields" in out, out


def test_a_field_run_refuses_label_maps_and_other_limits(
    tmp_path: Path, field_run: Path, field_data: Path, toy_data: Path
) -> None:
    code, out = cli("evaluate", field_run, toy_data, "--device", "cpu", "--quiet")
    assert code == 2 and "data prepped like the run's" in out, out
    other = tmp_path / "other"
    code, out = cli("prep", field_data / "src", other, "--multiple", "16", "--quiet")
    assert code == 0, out
    code, out = cli("train-global", other, "--run", field_run, *TINY, "--max-steps", "3")
    assert code == 2 and "otherwise than the run's data" in out, out


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".fits"])
def test_synthesize_writes_physical_units_in_the_inputs_format(
    tmp_path: Path, field_run: Path, field_data: Path, suffix: str
) -> None:
    source = field_data / "src" / "Test" / "Input" / "field_0000.fits"
    values, header = read_fits(source)
    inputs = tmp_path / "in"
    inputs.mkdir()
    if suffix == ".npy":
        np.save(inputs / "f.npy", values)
    elif suffix == ".tif":
        tifffile.imwrite(inputs / "f.tif", values.astype(np.float32))
    else:
        header["TELESCOP"] = "toy"
        fits.PrimaryHDU(values, header=header).writeto(inputs / "f.fits")
    code, out = cli("synthesize", field_run, inputs, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0 and "wrote 1 fields" in out, out
    written = tmp_path / "out" / f"f{suffix}"
    expected = Synthesizer(Run.open(field_run), None)(values)  # the Python API, same units
    np.testing.assert_allclose(read_field(written), expected, rtol=1e-5, atol=1e-3)
    assert np.abs(expected).max() <= 250 + 1e-6  # inside the output's limits, in a.u.
    assert (tmp_path / "out" / "previews" / "f.png").is_file()
    if suffix == ".fits":
        _, kept = read_fits(written)
        assert kept["TELESCOP"] == "toy" and kept["BUNIT"] == "a.u."
        history = "".join(str(card) for card in kept["HISTORY"])  # long cards wrap
        assert f"run {field_run} step 2" in history


def test_synthesize_refuses_a_field_of_other_channels(tmp_path: Path, field_run: Path) -> None:
    np.save(tmp_path / "two.npy", np.zeros((2, 32, 64), np.float32))
    code, out = cli("synthesize", field_run, tmp_path / "two.npy", "--out", tmp_path / "o")
    assert code == 2 and "has 2 channels, but the run takes 1" in out, out


def test_evaluate_scores_fields_in_physical_units(tmp_path: Path, field_run: Path,
                                                  field_data: Path) -> None:  # fmt: skip
    code, out = cli(
        "evaluate", field_run, field_data / "data", "--out", tmp_path / "e", "--bin", "4",
        "--device", "cpu", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, out
    scores = json.loads(out)
    assert scores["kind"] == "field" and scores["count"] == 2 and scores["units"] == "a.u."
    assert scores["data_range"] == 500 and scores["bin"] == 4
    assert set(scores["pooled"]) == {"mae", "rmse", "cc"}
    assert set(scores["mean"]) == {"mae", "rmse", "cc", "psnr", "ssim"}
    fake = np.load(tmp_path / "e" / "fields" / f"{scores['per_image'][0]['key']}.npy")
    assert fake.shape == (32, 64) and np.abs(fake).max() > 1  # physical units, not [-1, 1]
    page = (tmp_path / "e" / "index.html").read_text()
    assert "CC (4x4 bins)" in page and "previews/" in page


def test_a_bin_larger_than_the_images_is_refused(
    tmp_path: Path, field_run: Path, field_data: Path
) -> None:
    """Corpus: --bin 64 on 32x64 fields scored a binned RMSE and MAE of 0 (no block fits)."""
    code, out = cli(
        "evaluate", field_run, field_data / "data", "--out", tmp_path / "e", "--bin", "64",
        "--device", "cpu",
    )  # fmt: skip
    one_line(code, out, "--bin 64: larger than the 64x32 images scored", "--bin 32 or less")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("option", ["--segmenter", "--inception"])
def test_image_scorers_on_a_field_run_are_refused(
    tmp_path: Path, field_run: Path, field_data: Path, option: str
) -> None:
    """Corpus: --segmenter on a field run was ignored without a word."""
    scorer = tmp_path / "scorer.pt2"
    scorer.write_bytes(b"x")
    code, out = cli("evaluate", field_run, field_data / "data", "--out", tmp_path / "e",
                    option, scorer, "--device", "cpu")  # fmt: skip
    one_line(code, out, f"{option} {scorer}: scores images; this run renders measured fields")
    assert not (tmp_path / "e").exists()


def test_bin_is_for_fields_only(tmp_path: Path, tiny_feature_run: Path, toy_data: Path) -> None:
    code, out = cli("evaluate", tiny_feature_run, toy_data, "--bin", "4", "--device", "cpu")
    assert code == 2 and "--bin" in out, out


def test_pooled_sums_match_numpy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(5, 2, (2, 1, 8, 8)), rng.normal(5, 2, (2, 1, 8, 8))
    b = b + a  # correlated
    sums = Sums()
    for f, r in zip(a, b, strict=True):
        sums.add(f, r)
    got = sums.scores()
    assert got["mae"] == pytest.approx(np.abs(a - b).mean())
    assert got["rmse"] == pytest.approx(np.sqrt(((a - b) ** 2).mean()))
    assert got["cc"] == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert pearson(a[0], b[0]) == pytest.approx(np.corrcoef(a[0].ravel(), b[0].ravel())[0, 1])


def test_psnr_ssim_and_bins() -> None:
    rng = np.random.default_rng(4)
    real = rng.uniform(-100, 100, (1, 32, 32))
    assert psnr(real + 2.0, real, 200.0) == pytest.approx(20 * math.log10(200 / 2))
    assert ssim(real, real, 200.0) == pytest.approx(1.0)
    assert ssim(real + rng.normal(0, 20, real.shape), real, 200.0) < 0.95
    # constant fields: only the luminance term, (2 * 5 * 3 + C1) / (5^2 + 3^2 + C1)
    c1 = (0.01 * 10) ** 2
    expected = (30 + c1) / (34 + c1)
    assert ssim(np.full((1, 16, 16), 5.0), np.full((1, 16, 16), 3.0), 10.0) == pytest.approx(
        expected
    )
    np.testing.assert_array_equal(
        bin_mean(np.arange(16.0).reshape(1, 4, 4), 2), [[[2.5, 4.5], [10.5, 12.5]]]
    )


def test_colour_maps_follow_the_sign_of_the_limits() -> None:
    from p2phd.field_view import colour_map, colourise, display_limits

    signed = FieldScale(channels=1, low=-10, high=30)
    assert colour_map(signed) == "diverging" and display_limits(signed) == (-30, 30)
    zero = colourise(np.zeros((1, 1)), signed)[0, 0]
    assert tuple(zero) == (247, 247, 247)  # 0 is white: symmetric about 0
    grey = FieldScale(channels=1, low=0, high=10)
    assert colour_map(grey) == "grey"
    assert tuple(colourise(np.array([[10.0]]), grey)[0, 0]) == (255, 255, 255)


def test_export_records_the_mapping_and_edit_refuses(tmp_path: Path, field_run: Path) -> None:
    onnx = pytest.importorskip("onnx")
    code, out = cli("export", field_run, "--out", tmp_path / "g.onnx")
    assert code == 0, out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "g.onnx")).metadata_props}
    recorded = json.loads(meta["p2phd.fields"])
    assert (
        recorded == json.loads((field_run / "config.json").read_text())["config"]["net"]["fields"]
    )
    code, out = cli("edit", field_run, tmp_path, "--device", "cpu")
    assert code == 2 and "takes measured fields; the editor edits label maps" in out, out
