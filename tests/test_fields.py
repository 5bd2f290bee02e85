"""Measured fields (issue 20): float and integer arrays in .npy, TIFF, FITS and 16-bit PNG
are read as measured, prepped without loss and mapped back to physical units exactly."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from p2phd.config import FieldRange, FieldScale
from p2phd.data.fields import normalise, physical, read_field, read_fits, write_field
from p2phd.errors import ConfigError, DatasetError

from helpers import cli

fits = pytest.importorskip("astropy.io.fits")


def signed_field(seed: int, height: int = 32, width: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 400, (height, width)).astype(np.float32)


def reference_source(root: Path, n_train: int = 3, n_test: int = 2, suffix: str = ".npy") -> Path:
    """`{train,test}_{A,B}` of signed inputs and their tanh-squashed targets."""
    for split, count in (("train", n_train), ("test", n_test)):
        (root / f"{split}_A").mkdir(parents=True)
        (root / f"{split}_B").mkdir(parents=True)
        for i in range(count):
            a = signed_field(i + (100 if split == "test" else 0))
            write_field(root / f"{split}_A" / f"m{i}{suffix}", a[None].astype(np.float64))
            write_field(root / f"{split}_B" / f"m{i}{suffix}", np.tanh(a / 300)[None] * 2)
    return root


@pytest.mark.parametrize("scale", ["linear", "log", "asinh"])
def test_normalise_then_physical_gives_the_values_back_inside_the_limits(scale: str) -> None:
    low, high = (0.5, 4000.0) if scale == "log" else (-3000.0, 3000.0)
    field_scale = FieldScale(channels=1, low=low, high=high, scale=scale)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    values = rng.uniform(low, high, (1, 16, 16))
    if scale == "log":
        values = 10 ** rng.uniform(np.log10(low), np.log10(high), (1, 16, 16))
    unit, clipped = normalise(field_scale, values)
    assert unit.dtype == np.float32 and clipped == 0
    assert unit.min() >= -1 and unit.max() <= 1
    back = physical(field_scale, unit)
    # float32 keeps 24 bits: the error is a few parts in 10^7 of the (scaled) range
    np.testing.assert_allclose(back, values, rtol=2e-6, atol=(high - low) * 2e-7)


def test_values_outside_the_limits_are_clipped_and_counted() -> None:
    scale = FieldScale(channels=1, low=-1.0, high=1.0)
    unit, clipped = normalise(scale, np.array([[[-5.0, 0.0, 0.5, 7.0]]]))
    assert clipped == 2
    np.testing.assert_array_equal(unit, [[[-1.0, 0.0, 0.5, 1.0]]])


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("a.npy", lambda p, a: np.save(p, a)),
        ("a.tif", lambda p, a: tifffile.imwrite(p, a)),
        ("a.tiff", lambda p, a: tifffile.imwrite(p, a.astype(np.uint16))),
        ("a.fits", lambda p, a: fits.PrimaryHDU(a).writeto(p)),
        ("a.png", lambda p, a: Image.fromarray(a.astype(np.uint16)).save(p)),
    ],
)
def test_each_format_reads_as_measured(tmp_path: Path, name: str, write) -> None:  # type: ignore[no-untyped-def]
    values = np.random.default_rng(1).uniform(0, 60000, (24, 40)).astype(np.float32)
    if name.endswith((".tiff", ".png")):
        values = np.round(values)  # 16-bit integers
    write(tmp_path / name, values)
    read = read_field(tmp_path / name)
    assert read.shape == (1, 24, 40) and read.dtype == np.float64
    np.testing.assert_array_equal(read[0], values)


def test_a_multi_channel_tiff_is_channels_first(tmp_path: Path) -> None:
    values = np.random.default_rng(2).normal(size=(24, 40, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "rgb.tif", values, photometric="rgb")
    np.testing.assert_array_equal(read_field(tmp_path / "rgb.tif"), np.moveaxis(values, -1, 0))


def test_fits_keeps_its_header_and_gains_a_history_card(tmp_path: Path) -> None:
    hdu = fits.PrimaryHDU(signed_field(0))
    hdu.header["TELESCOP"] = "SDO/HMI"
    hdu.writeto(tmp_path / "in.fits")
    values, header = read_fits(tmp_path / "in.fits")
    write_field(tmp_path / "out.fits", values[None] * 2, header, "p2phd run runs/x step 10")
    again, written = read_fits(tmp_path / "out.fits")
    assert written["TELESCOP"] == "SDO/HMI"
    assert "p2phd run runs/x step 10" in "".join(str(c) for c in written["HISTORY"])
    np.testing.assert_allclose(again, values * 2, rtol=1e-6)


def test_range_options_parse_values_and_percentiles() -> None:
    assert FieldRange.parse("-3000,3000", "--in-range") == FieldRange(low=-3000, high=3000)
    assert FieldRange.parse("p1,p99", "--out-range") == FieldRange(low=1, high=99, percent=True)
    for text in ("3000", "5,1", "a,b", "p1,99", "p-1,p50", "nan,1"):
        with pytest.raises(ConfigError, match="--in-range"):
            FieldRange.parse(text, "--in-range")


def test_prep_of_fields_is_exactly_invertible_and_records_the_mapping(tmp_path: Path) -> None:
    src = reference_source(tmp_path / "src")
    code, out = cli(
        "prep", src, tmp_path / "data", "--in-range", "-1000,1000", "--out-range", "p1,p99"
    )
    assert code == 0, out
    assert "measured fields" in out and "values clipped" in out
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["kind"] == "field" and manifest["label_nc"] == 0
    assert manifest["fields"]["input"] == {
        "channels": 1,
        "low": -1000.0,
        "high": 1000.0,
        "scale": "linear",
        "units": "",
    }
    stats = manifest["field_stats"]
    target_scale = manifest["fields"]["output"]
    # p1, p99 of the targets as measured: at most 2% of the (area-resized) values lie outside
    assert 0 < stats["output"]["clipped"] / stats["output"]["values"] <= 0.02
    scale = FieldScale(**manifest["fields"]["input"])
    original = read_field(src / "train_A" / "m0.npy")
    prepped = np.load(tmp_path / "data" / "train" / "input" / "m0.npy")
    assert prepped.dtype == np.float32 and prepped.shape == (1, 32, 64)
    inside = (original >= -1000) & (original <= 1000)
    assert stats["input"]["clipped"] > 0 and inside.mean() > 0.9
    # 48 wide rounds to 64 (--multiple 32), bilinear in physical units, then clipped
    from p2phd.data.fields import resize_field

    expected = np.clip(resize_field(original, 64, 32), -1000, 1000)
    np.testing.assert_allclose(physical(scale, prepped), expected, atol=2000 * 2e-7)
    assert FieldScale(**target_scale).low < -1.5


def test_prep_without_resizing_returns_the_stored_values(tmp_path: Path) -> None:
    src = reference_source(tmp_path / "src")
    code, out = cli("prep", src, tmp_path / "data", "--multiple", "16", "--quiet")
    assert code == 0, out
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    scale = FieldScale(**manifest["fields"]["output"])
    original = read_field(src / "test_B" / "m1.npy")
    prepped = np.load(tmp_path / "data" / "test" / "img" / "m1.npy")
    assert manifest["field_stats"]["output"]["clipped"] == 0  # the data's own min, max
    np.testing.assert_allclose(physical(scale, prepped), original, atol=4 * 2e-7)


def test_the_input_target_layout_of_fits_files(tmp_path: Path) -> None:
    for split in ("Train", "Test"):
        for side in ("Input", "Target"):
            (tmp_path / "src" / split / side).mkdir(parents=True)
        for i in range(2):
            a = np.abs(signed_field(i)) + 1
            fits.PrimaryHDU(a).writeto(tmp_path / "src" / split / "Input" / f"s{i}.fits")
            fits.PrimaryHDU(np.sqrt(a)).writeto(tmp_path / "src" / split / "Target" / f"s{i}.fits")
    code, out = cli(
        "prep", tmp_path / "src", tmp_path / "data", "--in-scale", "log", "--multiple", "16"
    )
    assert code == 0, out
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["source_layout"] == "input-target"
    assert manifest["fields"]["input"]["scale"] == "log"
    assert sorted(p.name for p in (tmp_path / "data" / "test" / "img").iterdir()) == [
        "s0.npy",
        "s1.npy",
    ]


def bad_case(tmp_path: Path, case: str) -> tuple[Path, list[str], str]:
    """A source with one bad file, the extra options and the text the error must hold."""
    src = reference_source(tmp_path / "src", n_train=2, n_test=1)
    bad = src / "train_A" / "m1.npy"
    options: list[str] = []
    if case == "nan":
        values = signed_field(1)
        values[3, 5] = np.nan
        np.save(bad, values)
        expected = "pass --fill"
    elif case == "4-d":
        np.save(bad, np.zeros((2, 1, 32, 48), np.float32))
        expected = "give [H, W] or [C, H, W]"
    elif case == "3-d where 2-d":
        np.save(bad, np.zeros((3, 32, 48), np.float32))
        options = ["--input-nc", "1"]
        expected = "not the 1 of --input-nc"
    elif case == "channels differ":
        np.save(bad, np.zeros((2, 32, 48), np.float32))
        expected = "the same channels"
    elif case == "size":
        np.save(bad, np.zeros((32, 40), np.float32))
        expected = "make them the same size"
    elif case == "complex":
        np.save(bad, np.zeros((32, 48), np.complex64))
        expected = "store real numbers"
    elif case == "object":
        np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        expected = "not a readable .npy array"
    elif case == "truncated fits":  # its header promises more data than the file holds
        bad = bad.with_suffix(".fits")
        (src / "train_A" / "m1.npy").unlink()
        fits.PrimaryHDU(np.zeros((32, 48), np.float32)).writeto(bad)
        bad.write_bytes(bad.read_bytes()[: 2880 + 120])
        expected = "not a readable FITS file (File may have been truncated"
    else:  # a FITS file with a header and no image
        bad = bad.with_suffix(".fits")
        (src / "train_A" / "m1.npy").unlink()
        fits.PrimaryHDU().writeto(bad)
        expected = "without image data"
    return src, options, expected


@pytest.mark.parametrize(
    "case",
    [
        "nan",
        "4-d",
        "3-d where 2-d",
        "channels differ",
        "size",
        "complex",
        "object",
        "fits",
        "truncated fits",
    ],
)
def test_a_bad_field_file_stops_prep_in_one_line(tmp_path: Path, case: str) -> None:
    src, options, expected = bad_case(tmp_path, case)
    code, out = cli("prep", src, tmp_path / "data", *options)
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert "m1." in out and expected in out, out
    assert not (tmp_path / "data").exists()


def test_nan_is_replaced_by_the_declared_fill_and_counted(tmp_path: Path) -> None:
    src, _, _ = bad_case(tmp_path, "nan")
    code, out = cli("prep", src, tmp_path / "data", "--fill", "0", "--json", "--quiet")
    assert code == 0, out
    assert json.loads(out)["field_stats"]["input"]["filled"] == 1
    prepped = np.load(tmp_path / "data" / "train" / "input" / "m1.npy")
    assert np.isfinite(prepped).all()


def test_field_options_on_label_maps_are_refused(tmp_path: Path, toy_source: Path) -> None:
    code, out = cli("prep", toy_source, tmp_path / "data", "--in-range", "0,1")
    assert code == 2 and "--in-range" in out and "no measured fields" in out, out


def test_a_log_scale_over_signed_limits_is_refused(tmp_path: Path) -> None:
    src = reference_source(tmp_path / "src")
    code, out = cli("prep", src, tmp_path / "data", "--out-scale", "log", "--out-range", "-2,2")
    assert code == 2 and "--out-scale log" in out and "asinh" in out, out


def test_a_truncated_fits_file_is_one_error_and_no_warning(tmp_path: Path) -> None:
    """astropy printed its truncation warning on stderr before our line, and our line gave
    its reshape error instead of the reason."""
    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(np.zeros((32, 48), np.float32)).writeto(path)
    path.write_bytes(path.read_bytes()[: 2880 + 120])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(DatasetError, match=r"cut.fits: not a readable FITS file \(File may"):
            read_fits(path)
    assert [str(w.message) for w in shown] == []


def test_a_pickled_npy_is_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.npy"
    np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="not a readable .npy array"):
        read_field(path)


def test_multi_channel_fields_with_declared_limits(tmp_path: Path) -> None:
    """The channels come from the files even when no range pass reads them."""
    src = tmp_path / "src"
    for split in ("train", "test"):
        for side in ("A", "B"):
            (src / f"{split}_{side}").mkdir(parents=True)
            for i in range(2):
                values = np.random.default_rng(i).normal(size=(3 if side == "A" else 2, 32, 32))
                write_field(src / f"{split}_{side}" / f"x{i}.tif", values)
    code, out = cli(
        "prep", src, tmp_path / "data", "--in-range", "-5,5", "--out-range", "-5,5", "--quiet"
    )
    assert code == 0, out
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["fields"]["input"]["channels"] == 3
    assert manifest["fields"]["output"]["channels"] == 2
    assert np.load(tmp_path / "data" / "test" / "img" / "x1.npy").shape == (2, 32, 32)
