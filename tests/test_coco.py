"""COCO-Stuff as it unpacks: its label values as class ids, and instance maps drawn from COCO's
instance annotations (`prep --coco-instances`), made here as tiny trees and JSON files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from p2phd.datasets.coco_stuff import CLASSES as COCO_STUFF_CLASSES

from helpers import TINY, cli, run_recipe

pytest.importorskip("pycocotools")
from pycocotools import mask as coco_mask  # noqa: E402

SIZE = 64
PERSON, CAR, DOG, WOOD = 1, 3, 18, 182  # class ids (COCO category ids); files store id - 1
TRAIN, VAL = (9, 10, 11), (139, 140)


def _rle(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """A mask as COCO writes it: compressed RLE (counts a string) or uncompressed (a list)."""
    if compressed:
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode()}
    flat = mask.T.reshape(-1).astype(int)  # column-major runs, starting with a run of 0s
    edges = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
    return {"size": list(mask.shape), "counts": np.diff(np.r_[0, edges]).tolist()}


def _box(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[top:bottom, left:right] = True
    return mask


def _annotations(image_id: int) -> list[dict[str, Any]]:
    """Every kind COCO has: a polygon reaching past its class's pixels, compressed and
    uncompressed RLE, a crowd, a later object over an earlier one, one off its class, ones
    with no polygon or polygons too short to be shapes (pycocotools would read 4 numbers as a
    box)."""
    kinds = [
        (PERSON, 0, [[0, 0, 40, 0, 40, 24, 0, 24]]),  # 256; its cols >= 32 are no person
        (PERSON, 0, _rle(_box(32, 64, 0, 20))),  # 257
        (PERSON, 1, _rle(_box(32, 44, 20, 21), compressed=False)),  # a crowd: stays 1
        (CAR, 0, _rle(_box(0, 16, 40, 56), compressed=False)),  # 768
        (PERSON, 0, _rle(_box(0, 8, 0, 8))),  # 258, drawn over 256
        (DOG, 0, _rle(_box(40, 60, 40, 60))),  # on wood: no dog there, no id
        (CAR, 0, []),  # no polygon at all: no pixel, no id
        (PERSON, 0, [[10, 10, 20, 20], [0, 0]]),  # too short: no pixel, no id
    ]
    return [
        {
            "id": image_id * 10 + n,
            "image_id": image_id,
            "category_id": category,
            "iscrowd": crowd,
            "segmentation": segmentation,
        }
        for n, (category, crowd, segmentation) in enumerate(kinds)
    ]


def coco_tree(root: Path, train: tuple[int, ...] = TRAIN) -> Path:
    """`train2017/`, `val2017/`, `stuffthingmaps_trainval2017/` and `annotations/` (the val
    file names images with their folder, as some converted files do)."""
    rng = np.random.default_rng(0)
    maps = root / "stuffthingmaps_trainval2017"
    label = np.full((SIZE, SIZE), 255, np.uint8)  # unlabeled
    label[:, :32] = PERSON - 1
    label[32:, 32:] = WOOD - 1
    label[:16, 40:56] = CAR - 1
    (root / "annotations").mkdir(parents=True)
    for split, ids in (("train2017", train), ("val2017", VAL)):
        (root / split).mkdir()
        (maps / split).mkdir(parents=True)
        images = []
        for image_id in ids:
            key = f"{image_id:012d}"
            Image.fromarray(label).save(maps / split / f"{key}.png")
            photo = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(photo).save(root / split / f"{key}.jpg", quality=90)
            name = f"{split}/{key}.jpg" if split == "val2017" else f"{key}.jpg"
            images.append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
        annotations = [a for i in ids for a in _annotations(i)]
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": []})
        )
    return root


def _instances(src: Path, *splits: str) -> list[object]:
    return [
        a for s in splits for a in ("--coco-instances", src / f"annotations/instances_{s}.json")
    ]


def _prep(src: Path, data: Path, *args: object) -> tuple[int, str]:
    return cli("prep", src, data, "--quiet", "--json", *args)


def test_label_values_become_coco_stuffs_class_ids(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    code, out = _prep(src, tmp_path / "data")
    assert code == 0, out
    report = json.loads(out)
    assert report["source_layout"] == "coco-stuff" and report["dataset"] == "coco-stuff"
    assert report["counts"] == {"train": 3, "test": 2} and report["label_nc"] == 183
    assert report["unlabeled"] == 0 and not report["instance"]
    names = report["class_names"]
    assert names == list(COCO_STUFF_CLASSES)
    picks = (names[0], names[PERSON], names[CAR], names[91], names[92], names[WOOD])
    assert picks == ("unlabeled", "person", "car", "hair brush", "banner", "wood")
    label = np.asarray(Image.open(tmp_path / "data" / "test" / "label" / "000000000139.png"))
    assert (label[0, 0], label[5, 45], label[5, 36], label[40, 40]) == (PERSON, CAR, 0, WOOD)
    assert not (tmp_path / "data" / "test" / "inst").exists()
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["unlabeled"] == 0 and manifest["class_divisor"] == 256


def test_values_that_are_no_coco_stuff_ids_are_refused(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    bad = src / "stuffthingmaps_trainval2017" / "train2017" / "000000000010.png"
    Image.fromarray(np.full((SIZE, SIZE), 200, np.uint8)).save(bad)
    code, out = cli("prep", src, tmp_path / "data")
    assert code == 2 and "label value 200 is not a COCO-Stuff id" in " ".join(out.split())
    assert "000000000010" in out and len(out.strip().splitlines()) == 1


def test_instance_maps_are_drawn_from_cocos_annotations(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    data = tmp_path / "data"
    code, out = _prep(src, data, *_instances(src, "train2017", "val2017"))
    assert code == 0, out
    assert json.loads(out)["instance"] and json.loads(out)["class_divisor"] == 256
    test = data / "test"
    inst = np.asarray(Image.open(test / "inst" / "000000000139.png")).astype(np.int64)
    label = np.asarray(Image.open(test / "label" / "000000000139.png")).astype(np.int64)
    assert inst[10, 20] == PERSON * 256  # the polygon
    assert inst[5, 36] == 0  # the polygon past the person's pixels keeps the label's id
    assert inst[40, 5] == PERSON * 256 + 1  # compressed RLE
    assert inst[40, 20] == PERSON  # a crowd stays the class's region, like Cityscapes' groups
    assert inst[5, 45] == CAR * 256  # uncompressed RLE; k counts per class
    assert inst[3, 3] == PERSON * 256 + 2  # later objects are drawn over earlier ones
    assert set(np.unique(inst).tolist()) == {0, PERSON, WOOD, 256, 257, 258, CAR * 256}
    objects = inst >= 256  # no dog: its mask lies on wood, so it takes no pixel and no id
    assert (inst[objects] // 256 == label[objects]).all()
    assert (inst[~objects] == label[~objects]).all()
    boundary = np.asarray(Image.open(test / "boundary" / "000000000139.png"))
    assert boundary[3, 7] == 255 or boundary[3, 8] == 255  # between objects 258 and 256
    code, out = cli(
        "inspect",
        test / "label" / "000000000139.png",
        "--inst",
        test / "inst" / "000000000139.png",
        "--json",
    )
    assert code == 0, out
    named = {o["id"]: (o["class"], o["name"]) for o in json.loads(out)["instances"]}
    assert named == {256: (1, "person"), 257: (1, "person"), 258: (1, "person"), 768: (3, "car")}


def test_a_run_on_coco_takes_its_instance_numbering(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    data = tmp_path / "data"
    assert _prep(src, data, *_instances(src, "train2017", "val2017"))[0] == 0
    run = tmp_path / "run"
    code, out = cli(
        "train-global", data, "--run", run, *TINY, "--instance-feat", "--max-steps", "1"
    )
    assert code == 0, out
    net = json.loads((run / "config.json").read_text())["config"]["net"]
    assert net["class_divisor"] == 256 and net["instance"] and net["label_nc"] == 183
    assert cli("encode-features", run, data, "--device", "cpu", "--quiet")[0] == 0
    classes = json.loads((run / "features.json").read_text())["classes"]
    # per image: person objects 256, 257, 258 and the person pixels no object has; one car
    assert classes[str(PERSON)] == 4 * len(TRAIN) and classes[str(CAR)] == len(TRAIN)
    assert str(DOG) not in classes


def _ade20k(root: Path) -> Path:
    for folder in ("images", "annotations"):
        (root / "ADEChallengeData2016" / folder / "training").mkdir(parents=True)
    return root


def _set(path: str, value: Any) -> Any:
    """A change to a COCO file's data: `value` at `path` ("annotations.0.segmentation")."""

    def change(content: Any) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for key in parents:
            content = content[key]
        content[last] = value

    return change


MILLION = [[0, 0, 64, 64] * 500_000]  # a million points, back and forth across the image
CHANGES = {
    "width a string": _set("images.0.width", "abc"),
    "width huge": _set("images.0.width", 100_000),
    "image an int": _set("images.0", 7),
    "duplicate image id": _set("images.1.id", 139),
    "unlisted image": _set("annotations.0.image_id", 7),
    "category 0": _set("annotations.0.category_id", 0),
    "iscrowd 5": _set("annotations.0.iscrowd", 5),
    "huge mask": _set("annotations.1.segmentation", {"size": [100_000, 100_000], "counts": "0"}),
    "million points": _set("annotations.0.segmentation", MILLION),
    "far point": _set("annotations.0.segmentation", [[0, 0, 1e300, 0, 40, 24]]),
    "counts past the mask": _set(
        "annotations.3.segmentation", {"size": [64, 64], "counts": [0, 10**9]}
    ),
    "polygon of strings": _set("annotations.0.segmentation", [["a"] * 6]),
}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("val file missing", "000000000139 is in none of the --coco-instances files"),
        ("not found", "not found; pass COCO's annotations/instances_{train,val}2017.json"),
        ("not coco", "not a COCO instance annotation file (missing 'annotations')"),
        ("not json", "unreadable"),
        ("other size", "label map is 64x64 but"),
        ("bad segmentation", "cannot be drawn"),
        ("mask of another size", "is a mask of 32x32, the image is 64x64"),
        ("stuff file", "category 150 is a stuff class, not an object's"),
        ("given twice", "instances_val2017.json too; pass each split's annotation file once"),
        ("no pycocotools", "pip install 'p2phd[coco]'"),
        ("other layout", "is in the ade20k layout; COCO's instance annotations go with"),
        ("deep", "unreadable (nested deeper than 64 levels)"),
        ("width a string", "images[0].width: 'abc' is not of the expected type"),
        ("width huge", "images[0].width: 100000 is not in 1..16384"),
        ("image an int", "images[0]: expected an object"),
        ("duplicate image id", "image id 139 is given twice"),
        ("unlisted image", "an annotation of image 7, which the file does not list"),
        ("category 0", "annotations[0].category_id: 0 is no category"),
        ("iscrowd 5", "annotations[0].iscrowd: 5 is not 0 or 1"),
        ("huge mask", "is a mask of 100000x100000, the image is 64x64"),
        ("million points", "outline is 6.4e+07 pixels long, more than 1000 times"),
        ("far point", "a polygon reaches far outside the 64x64 image"),
        ("counts past the mask", "its RLE counts do not cover the 64x64 mask"),
        ("polygon of strings", "a polygon holds something other than numbers"),
    ],
)
def test_bad_instance_annotations_end_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, message: str
) -> None:
    src = coco_tree(tmp_path / "coco")
    files = _instances(src, "train2017", "val2017")
    val = src / "annotations" / "instances_val2017.json"
    content = json.loads(val.read_text())
    if damage == "val file missing":
        files = _instances(src, "train2017")
    elif damage == "not found":
        val.unlink()
    elif damage == "not coco":
        val.write_text(json.dumps({"images": []}))
    elif damage == "not json":
        val.write_text("{")
    elif damage == "other size":
        content["images"][0]["width"] = 32
        val.write_text(json.dumps(content))
    elif damage == "bad segmentation":
        content["annotations"][0]["segmentation"] = {"counts": "!!", "size": [1, 2, 3]}
        val.write_text(json.dumps(content))
    elif damage == "mask of another size":
        content["annotations"][1]["segmentation"] = _rle(np.ones((32, 32), bool))
        val.write_text(json.dumps(content))
    elif damage == "stuff file":
        content["annotations"][0]["category_id"] = 150
        val.write_text(json.dumps(content))
    elif damage == "given twice":
        files += _instances(src, "val2017")
    elif damage == "no pycocotools":
        monkeypatch.setitem(sys.modules, "pycocotools", None)
    elif damage == "other layout":
        src = _ade20k(tmp_path / "ade")
    elif damage == "deep":
        val.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif damage in CHANGES:
        CHANGES[damage](content)
        val.write_text(json.dumps(content))
    code, out = cli("prep", src, tmp_path / "data", *files)
    assert code == 2 and message in " ".join(out.split()), out
    assert len(out.strip().splitlines()) == 1 and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_the_recipe_runs_on_the_download_with_its_instances(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    result = run_recipe("coco_stuff.sh", tmp_path, COCO=str(src))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with instance maps" in result.stderr
    config = json.loads((tmp_path / "runs" / "coco_stuff_256" / "config.json").read_text())
    assert config["config"]["net"]["instance"] and config["config"]["net"]["class_divisor"] == 256
    written = sorted(p.name for p in (tmp_path / "results" / "coco_stuff_256").glob("*.png"))
    assert written == ["000000000139.png", "000000000140.png"]


def test_the_layout_of_coco_stuffs_readme_and_a_pool_of_workers(tmp_path: Path) -> None:
    """images/ and annotations/ each holding train2017/ and val2017/ (which ADE20K's names
    also have) read as COCO-Stuff; 20 items go through worker processes."""
    src = coco_tree(tmp_path / "coco", train=tuple(range(1, 21)))
    (src / "images").mkdir()
    for split in ("train2017", "val2017"):
        (src / split).rename(src / "images" / split)
        (src / "stuffthingmaps_trainval2017" / split).rename(src / "annotations" / split)
    (src / "stuffthingmaps_trainval2017").rmdir()
    code, out = cli(
        "prep", src, tmp_path / "data", "--workers", "2", *_instances(src, "train2017", "val2017")
    )
    assert code == 0, out
    assert "from the coco-stuff layout" in " ".join(out.split()) and "20 train + 2 test" in out
    inst = np.asarray(Image.open(tmp_path / "data" / "train" / "inst" / "000000000020.png"))
    assert set(np.unique(inst).tolist()) == {0, PERSON, WOOD, 256, 257, 258, CAR * 256}


def test_an_image_in_no_annotation_file_is_skipped_when_asked(tmp_path: Path) -> None:
    src = coco_tree(tmp_path / "coco")
    code, out = _prep(src, tmp_path / "data", "--skip-bad", *_instances(src, "train2017"))
    assert code == 0, out
    report = json.loads(out)
    assert report["counts"] == {"train": 3, "test": 0} and len(report["skipped"]) == 2
    assert "000000000139 is in none of the --coco-instances files" in report["skipped"][0]["reason"]
    code, out = cli("prep", src, tmp_path / "d2", "--skip-bad", *_instances(src, "train2017"))
    assert code == 0 and "(64x64)" in out, out  # not "(mixed sizes)" for the empty split
