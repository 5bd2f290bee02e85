"""`p2phd prep`: pairing by key, exact ids, resizing, boundary maps, the manifest, bad inputs.

Every source is synthesised here (tiny 40x70 maps, so rounding to the multiple matters, and
a 16-bit instance map with ids {0, 7, 26001, 33001}); nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from p2phd.cli import app
from p2phd.config import PrepConfig
from p2phd.data.augment import scaled_size
from p2phd.data.manifest import read_manifest
from p2phd.data.prep import prepare_dataset
from p2phd.errors import DatasetError

W, H = 40, 70  # source size: not a multiple of 8 or 32
INST_IDS = {0, 7, 26001, 33001}


def label_map(index: int) -> np.ndarray:
    """Labels 0..5; the top rows hold `index`, so each key's map is recognisable."""
    label = np.zeros((H, W), np.uint8)
    label[10:30, 5:20] = 3
    label[40:60, 20:35] = 5
    label[:4, :] = index
    return label


def inst_map() -> np.ndarray:
    inst = np.zeros((H, W), np.uint16)
    inst[:4, :] = 7
    inst[10:30, 5:20] = 26001
    inst[40:60, 20:35] = 33001
    return inst


def photo(index: int, height: int = H) -> np.ndarray:
    """A flat colour per key: bicubic resizing keeps it, so pairs can be told by content."""
    return np.full((height, W, 3), (40 * index, 100, 200 - 40 * index), np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_reference(root: Path, train: tuple[str, ...] = ("a", "b", "c"), test=("d",)) -> Path:
    for split, keys in (("train", train), ("test", test)):
        for i, key in enumerate(keys, start=1 if split == "train" else 4):
            save(root / f"{split}_label" / f"{key}.png", label_map(i))
            save(root / f"{split}_inst" / f"{key}.png", inst_map())
            save(root / f"{split}_img" / f"{key}.png", photo(i))
    return root


def make_cityscapes(root: Path) -> Path:
    """Two cities in train, one in val, plus files prep must ignore (colour maps, json, test)."""
    scenes = {
        "train": ["aachen_000000_000019", "bochum_000000_000313"],
        "val": ["frankfurt_000000_000294"],
        "test": ["berlin_000000_000019"],
    }
    for n, (split, keys) in enumerate(scenes.items()):
        for i, key in enumerate(keys, start=1 + 2 * n):
            city = key.split("_")[0]
            gt = root / "gtFine" / split / city
            save(gt / f"{key}_gtFine_labelIds.png", label_map(i))
            save(gt / f"{key}_gtFine_instanceIds.png", inst_map())
            save(gt / f"{key}_gtFine_color.png", photo(0))
            (gt / f"{key}_gtFine_polygons.json").write_text("{}")
            save(root / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png", photo(i))
    return root


def prep(src: Path, out: Path, *args: str):
    return CliRunner().invoke(app, ["prep", str(src), str(out), "--quiet", *args])


def summary(src: Path, out: Path, *args: str) -> dict:
    result = prep(src, out, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def is_photo(path: Path, index: int) -> bool:
    """Whether `path` holds the flat colour of key number `index`."""
    return bool((np.asarray(Image.open(path)) == photo(index)[0, 0]).all())


def ids(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


def naive_boundary(inst: np.ndarray) -> np.ndarray:
    h, w = inst.shape
    edge = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                if 0 <= y + dy < h and 0 <= x + dx < w and inst[y + dy, x + dx] != inst[y, x]:
                    edge[y, x] = True
    return edge


def no_leftovers(out: Path) -> None:
    """A failed prep leaves neither `out` nor a temporary sibling behind."""
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


# --- good sources -------------------------------------------------------------------------


def test_reference_layout(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    report = summary(src, out, "--multiple", "8")
    assert report["label_nc"] == 6 and report["label_nc_inferred"] is True
    assert report["counts"] == {"train": 3, "test": 1} and report["skipped"] == []
    assert report["sizes"] == {"train": [40, 72], "test": [40, 72]}  # 70 -> nearest multiple
    assert report["source_layout"] == "reference" and report["instance"] is True

    label = Image.open(out / "train" / "label" / "b.png")
    assert label.mode == "L" and label.size == (40, 72)
    assert set(np.unique(ids(out / "train" / "label" / "b.png"))) == {0, 2, 3, 5}
    inst = Image.open(out / "train" / "inst" / "b.png")
    assert inst.mode.startswith("I;16") and inst.size == (40, 72)
    inst_ids = ids(out / "train" / "inst" / "b.png")
    assert set(np.unique(inst_ids)) == INST_IDS  # 33001 > 32767 survives, no int16 wrap
    edge = np.asarray(Image.open(out / "train" / "boundary" / "b.png"))
    assert set(np.unique(edge)) == {0, 255}
    assert np.array_equal(edge == 255, naive_boundary(inst_ids))
    assert Image.open(out / "test" / "img" / "d.png").size == (40, 72)
    assert is_photo(out / "test" / "img" / "d.png", 4)

    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["kind"] == "labels"
    assert manifest["label_nc"] == 6 and manifest["multiple"] == 8
    assert manifest["source"] == str(src.resolve())
    assert manifest["splits"]["train"]["has_images"] is True
    assert manifest["splits"]["train"]["items"] == [
        {"key": k, "width": 40, "height": 72} for k in "abc"
    ]
    assert manifest["splits"]["test"]["items"] == [{"key": "d", "width": 40, "height": 72}]


def test_default_multiple_and_text_summary(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    result = CliRunner().invoke(app, ["prep", str(src), str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps the line at the terminal width
    assert "3 train + 1 test items (32x64)" in text
    assert "label_nc 6 (inferred from the data: max label 5)" in text
    assert Image.open(out / "train" / "img" / "a.png").size == (32, 64)


def test_cityscapes_layout(tmp_path: Path) -> None:
    src, out = make_cityscapes(tmp_path / "cityscapes"), tmp_path / "data"
    report = summary(src, out, "--label-nc", "35", "--multiple", "8")
    assert report["source_layout"] == "cityscapes"
    assert report["counts"] == {"train": 2, "test": 1}  # Cityscapes val is our test
    assert report["label_nc"] == 35 and report["label_nc_inferred"] is False
    keys = [it.key for it in read_manifest(out).splits["train"].items]
    assert keys == ["aachen_000000_000019", "bochum_000000_000313"]
    for i, key in enumerate(keys, start=1):
        assert ids(out / "train" / "label" / f"{key}.png")[0, 0] == i
        assert is_photo(out / "train" / "img" / f"{key}.png", i)
        assert set(np.unique(ids(out / "train" / "inst" / f"{key}.png"))) == INST_IDS
    assert (out / "test" / "label" / "frankfurt_000000_000294.png").exists()


def test_pairs_by_key_not_position(tmp_path: Path) -> None:
    """One missing photo must not shift the later pairs (pix2pixHD#252)."""
    src, out = make_reference(tmp_path / "src", train=("a", "b", "c", "d")), tmp_path / "data"
    (src / "train_img" / "b.png").unlink()
    # Nested keys pair too, and a photo may have another suffix than its label.
    save(src / "train_label" / "city" / "e.png", label_map(5))
    save(src / "train_inst" / "city" / "e.png", inst_map())
    save(src / "train_img" / "city" / "e.bmp", photo(5))
    report = summary(src, out, "--skip-bad", "--multiple", "8")
    assert report["counts"]["train"] == 4
    assert [(s["key"], "train_img" in s["reason"]) for s in report["skipped"]] == [("b", True)]
    for i, key in ((1, "a"), (3, "c"), (4, "d"), (5, "city__e")):
        assert ids(out / "train" / "label" / f"{key}.png")[0, 0] == i
        assert is_photo(out / "train" / "img" / f"{key}.png", i)


def test_width_resize_is_nearest_for_ids(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    report = summary(src, out, "--width", "20", "--multiple", "4")
    assert report["sizes"]["train"] == [20, 36]  # 70 * 20 / 40 = 35 -> 36
    label = ids(out / "train" / "label" / "a.png")
    assert label.shape == (36, 20) and set(np.unique(label)) <= {0, 1, 3, 5}
    assert set(np.unique(ids(out / "train" / "inst" / "a.png"))) <= INST_IDS
    assert np.array_equal(
        np.asarray(Image.open(out / "train" / "boundary" / "a.png")) == 255,
        naive_boundary(ids(out / "train" / "inst" / "a.png")),
    )


def test_rgb_inputs_and_wide_labels(tmp_path: Path) -> None:
    src = tmp_path / "rgb"
    for key, i in (("x", 1), ("y", 2)):
        save(src / "train_A" / f"{key}.png", photo(i))
        save(src / "train_B" / f"{key}.png", photo(i + 2))
    save(src / "test_A" / "t.png", photo(3))  # test photos (_B) are optional
    report = summary(src, tmp_path / "rgb_data", "--multiple", "8")
    assert report["kind"] == "rgb" and report["label_nc"] == 0 and report["instance"] is False
    splits = json.loads((tmp_path / "rgb_data" / "dataset.json").read_text())["splits"]
    assert splits["train"]["has_images"] is True and splits["test"]["has_images"] is False
    assert is_photo(tmp_path / "rgb_data/train/input/y.png", 2)
    assert is_photo(tmp_path / "rgb_data/train/img/y.png", 4)

    # An inferred label_nc above 256 makes every label map 16-bit, not only the widest one.
    src = make_reference(tmp_path / "wide", test=())
    save(src / "train_label" / "c.png", label_map(3).astype(np.uint16) * 100)
    report = summary(src, tmp_path / "wide_data")
    assert report["label_nc"] == 501
    for key in "abc":
        assert Image.open(tmp_path / f"wide_data/train/label/{key}.png").mode.startswith("I;16")


def test_api_report_and_progress(tmp_path: Path) -> None:
    src = make_reference(tmp_path / "src")
    (src / "train_img" / "c.png").unlink()
    calls: list[tuple[int, int]] = []
    cfg = PrepConfig(multiple=8, skip_bad=True)
    report = prepare_dataset(src, tmp_path / "data", cfg, progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)  # c never pairs, so 3 items run
    assert report.counts == {"train": 2, "test": 1} and report.label_nc_inferred
    assert [s["key"] for s in report.skipped] == ["c"]
    assert json.loads(json.dumps(report.to_dict()))["out"] == str(tmp_path / "data")
    assert report.describe() == (
        f"prepped 2 train + 1 test items (40x72) into {tmp_path / 'data'}/ from the reference "
        "layout; label_nc 6 "
        "(inferred from the data: max label 5); with instance maps; 1 skipped"
    )


def test_workers_give_identical_output(tmp_path: Path) -> None:
    src = make_reference(tmp_path / "src", train=tuple("abcdef"))
    one = summary(src, tmp_path / "one", "--workers", "1", "--multiple", "8")
    two = summary(src, tmp_path / "two", "--workers", "2", "--multiple", "8")
    assert one == {**two, "out": one["out"]}
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.*"))
    assert len(files) == 1 + 4 * 7  # manifest; label, inst, boundary, img per item
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_overwrite(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    assert prep(src, out).exit_code == 0
    (out / "old.txt").write_text("keep me")
    result = prep(src, out)
    assert result.exit_code == 2 and str(out) in result.output and "--overwrite" in result.output
    assert (out / "old.txt").exists()
    assert prep(src, out, "--overwrite").exit_code == 0
    assert not (out / "old.txt").exists() and (out / "dataset.json").exists()
    assert prep(src, out, "--overwrite").exit_code == 0  # a dataset is replaced again
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_replaces_only_a_dataset_folder(tmp_path: Path) -> None:
    """Corpus: `prep SRC mine --overwrite` deleted a folder that was never a dataset."""
    src, mine = make_reference(tmp_path / "src"), tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    result = prep(src, mine, "--overwrite")
    assert result.exit_code == 2, result.output
    assert "dataset.json" in result.output and str(mine) in result.output
    assert "Traceback" not in result.output
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_one_size_rule_rounds_to_multiples_halves_up() -> None:
    assert scaled_size(40, 70, None, 32) == (32, 64)
    assert scaled_size(2048, 1024, 1024, 32) == (1024, 512)
    assert scaled_size(10, 10, None, 32) == (32, 32)  # at least one multiple
    assert scaled_size(620, 460, None, 16) == (624, 464)
    assert scaled_size(128, 80, 128, 32) == (128, 96)  # 2.5 multiples: halves up, not to even
    assert scaled_size(128, 80, 100, 32) == (96, 64)  # 60 px = 1.875 multiples -> 2
    assert scaled_size(1000, 476, 200, 16) == (208, 96)  # 99.008 px = 6.19 multiples -> 6


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="run p2phd prep first"):
        read_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text('{"schema_version": 99}')
    with pytest.raises(DatasetError, match="dataset.json: schema_version 99"):
        read_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="run p2phd prep first"):
        read_manifest(tmp_path)


ITEM = {"key": "a", "width": 16, "height": 8}
GOOD_MANIFEST = {
    "schema_version": 1,
    "kind": "labels",
    "label_nc": 3,
    "instance": False,
    "multiple": 8,
    "class_names": ["sky", "road", "car"],
    "unlabeled": 0,
    "splits": {"train": {"has_images": True, "items": [{"key": "a", "width": 16, "height": 8}]}},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"splits": {"train": {"items": []}}}, "splits.train.has_images: missing"),
        (
            {
                "splits": {
                    "train": {
                        "has_images": True,
                        "items": [{"key": "a", "width": "abc", "height": 8}],
                    }
                }
            },
            "splits.train.items[0].width: expected int, got 'abc'",
        ),
        ({"splits": {"train": {"has_images": True, "items": ["a.png"]}}}, "items[0]: expected"),
        (
            {
                "splits": {
                    "train": {"has_images": True, "items": [{"key": "a", "width": 0, "height": 8}]}
                }
            },
            "size 0x8 is not positive",
        ),
        ({"class_names": ["sky", "sky", "car"]}, "class_names: a name is listed twice"),
        ({"unlabeled": 7}, "unlabeled: 7 is not a class of 3"),
        ({"label_nc": True}, "label_nc: expected int, got True"),
        ({"extra": 1}, "unknown key(s) extra"),
        ({"label_nc": float("nan")}, "NaN is not a JSON number"),
    ],
)
def test_read_manifest_checks_every_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({**GOOD_MANIFEST, **change}))
    with pytest.raises(DatasetError, match=re.escape(message)) as caught:
        read_manifest(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'dataset.json'}: ")
    assert "\n" not in str(caught.value)


def test_read_manifest_refuses_deep_nesting(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match="nested deeper than 64 levels"):
        read_manifest(tmp_path)
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "nested deeper" in result.output
    assert "Traceback" not in result.output


# --- bad inputs: exit 2, one line naming the file; --skip-bad skips and counts -------------


def bomb_png(path: Path) -> None:
    """A tiny PNG whose header declares 20000x20000 pixels (a decompression bomb)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(100)))
        + chunk(b"IEND", b"")
    )


def _sizes_differ(src: Path) -> list[str]:
    save(src / "train_img" / "b.png", photo(2, height=68))
    return ["train_img/b.png", "train_label/b.png", "40x68", "40x70"]


def _label_too_big(src: Path) -> list[str]:
    save(src / "train_label" / "b.png", label_map(9))
    return ["train_label/b.png", "label value 9", "pass --label-nc 10"]


def _label_without_photo(src: Path) -> list[str]:
    (src / "train_img" / "b.png").unlink()
    return ["train_label/b.png", "no partner in", "train_img/b.*"]


def _photo_without_label(src: Path) -> list[str]:
    save(src / "train_img" / "z.png", photo(1))
    return ["train_img/z.png", "train_label/z.*", "remove the photo"]


def _truncated(src: Path) -> list[str]:
    path = src / "train_label" / "b.png"
    path.write_bytes(path.read_bytes()[:100])
    return ["train_label/b.png", "not a readable image"]


def _not_an_image(src: Path) -> list[str]:
    (src / "train_inst" / "b.png").write_text("this is no png")
    return ["train_inst/b.png", "not a readable image"]


def _rgb_label(src: Path) -> list[str]:
    save(src / "train_label" / "b.png", photo(2))
    return ["train_label/b.png", "mode RGB", "prep --palette FILE reads colour-coded label maps"]


def _bomb(src: Path) -> list[str]:
    bomb_png(src / "train_img" / "b.png")
    return ["train_img/b.png", "decompression bomb"]


def _duplicate_key(src: Path) -> list[str]:
    save(src / "train_img" / "b.bmp", photo(2))
    return ["train_img/b.bmp", "train_img/b.png", "share the key"]


def _instance_id_too_big(src: Path) -> list[str]:
    (src / "train_inst" / "b.png").unlink()
    Image.fromarray(inst_map().astype(np.int32) * 3).save(src / "train_inst" / "b.tif")
    return ["train_inst/b.tif", "instance id 99003", "above 65535"]


BAD = [
    _sizes_differ,
    _label_too_big,
    _label_without_photo,
    _photo_without_label,
    _truncated,
    _not_an_image,
    _rgb_label,
    _bomb,
    _duplicate_key,
    _instance_id_too_big,
]


@pytest.mark.parametrize("spoil", BAD, ids=lambda f: f.__name__.strip("_"))
def test_bad_input_exits_2_naming_the_file(tmp_path: Path, spoil: Callable) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    needles = spoil(src)
    result = prep(src, out, "--label-nc", "6")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    for needle in needles:
        assert needle in result.output, result.output
    no_leftovers(out)


@pytest.mark.parametrize("spoil", BAD, ids=lambda f: f.__name__.strip("_"))
def test_skip_bad_skips_and_counts(tmp_path: Path, spoil: Callable) -> None:
    src, out = make_reference(tmp_path / "src"), tmp_path / "data"
    needles = spoil(src)
    report = summary(src, out, "--label-nc", "6", "--skip-bad")
    (skipped,) = report["skipped"]
    assert skipped["split"] == "train" and skipped["key"] in ("b", "z")
    assert needles[0] in skipped["reason"]
    kept = ["a", "b", "c"] if skipped["key"] == "z" else ["a", "c"]  # z: a stray photo
    assert report["counts"] == {"train": len(kept), "test": 1}
    assert sorted(p.stem for p in (out / "train" / "label").iterdir()) == kept
    assert len(read_manifest(out).skipped) == 1


def test_first_bad_item_is_reported_in_key_order(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src", train=tuple("abcdef")), tmp_path / "data"
    save(src / "train_label" / "e.png", label_map(9))
    save(src / "train_label" / "c.png", label_map(8))
    for workers in ("1", "2"):
        result = prep(src, out, "--label-nc", "6", "--workers", workers)
        assert result.exit_code == 2 and "train_label/c.png" in result.output, result.output
        no_leftovers(out)


def test_label_nc_advice_holds_the_whole_source(tmp_path: Path) -> None:
    """The first map over --label-nc is named, but the --label-nc advised is the one that holds
    every map: one rerun is enough (it used to advise the first map's value + 1)."""
    src, out = make_reference(tmp_path / "src", train=tuple("abcdef")), tmp_path / "data"
    save(src / "train_label" / "c.png", label_map(8))
    save(src / "train_label" / "e.png", label_map(12))
    for workers in ("1", "2"):
        result = prep(src, out, "--label-nc", "6", "--workers", workers)
        assert result.exit_code == 2 and "train_label/c.png: label value 8" in result.output
        assert "pass --label-nc 13" in result.output and "train_label/e.png" in result.output
        no_leftovers(out)
    assert prep(src, out, "--label-nc", "13").exit_code == 0


def test_empty_and_unknown_sources(tmp_path: Path) -> None:
    empty, out = tmp_path / "empty", tmp_path / "data"
    empty.mkdir()
    result = prep(empty, out)
    assert result.exit_code == 2 and str(empty) in result.output and "empty" in result.output
    (empty / "train_label").mkdir()
    (empty / "train_img").mkdir()
    result = prep(empty, out)
    assert result.exit_code == 2 and "train_label" in result.output and "no images" in result.output
    other = tmp_path / "other"
    (other / "photos").mkdir(parents=True)
    result = prep(other, out)
    assert result.exit_code == 2 and "train_label/" in result.output and "gtFine/" in result.output
    result = prep(tmp_path / "missing", out)
    assert result.exit_code == 2 and "missing" in result.output
    no_leftovers(out)


def test_skip_bad_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    src, out = make_reference(tmp_path / "src", train=("a",), test=()), tmp_path / "data"
    save(src / "train_label" / "a.png", photo(1))
    result = prep(src, out, "--skip-bad")
    assert result.exit_code == 2 and "nothing left" in result.output
    assert "train_label/a.png" in result.output
    no_leftovers(out)
