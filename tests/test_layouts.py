"""`p2phd prep` reads datasets as their official downloads unpack: tiny trees made here in
each layout, good and bad."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2phd.datasets.ade20k import CLASSES as ADE20K_CLASSES

from helpers import TINY, cli, run_recipe

SIZE = 64


def ade20k_tree(root: Path, train: int = 3, val: int = 2, seed: int = 0) -> Path:
    """`ADEChallengeData2016/` with `images/{training,validation}/*.jpg` and
    `annotations/{training,validation}/*.png` (ids 0..150)."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    for split, n, stem in (("training", train, "train"), ("validation", val, "val")):
        for folder in ("images", "annotations"):
            (base / folder / split).mkdir(parents=True)
        for i in range(1, n + 1):
            key = f"ADE_{stem}_{i:08d}"
            label = np.zeros((SIZE, SIZE), np.uint8)
            label[: SIZE // 2] = rng.integers(0, 151)
            label[SIZE // 2 :] = 150 if i == 1 else rng.integers(1, 151)
            Image.fromarray(label).save(base / "annotations" / split / f"{key}.png")
            photo = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(photo).save(base / "images" / split / f"{key}.jpg", quality=90)
    (base / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n")
    return root


def test_ade20k_as_unpacked_preps_with_its_classes_and_no_instances(tmp_path: Path) -> None:
    src = ade20k_tree(tmp_path / "download")
    code, out = cli("prep", src, tmp_path / "data", "--quiet", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["source_layout"] == "ade20k" and report["dataset"] == "ade20k"
    assert report["counts"] == {"train": 3, "test": 2} and not report["instance"]
    assert report["label_nc"] == 151 and report["unlabeled"] == 0
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["class_names"] == list(ADE20K_CLASSES) and manifest["unlabeled"] == 0
    assert manifest["class_names"][:3] == ["unlabeled", "wall", "building"]
    assert manifest["class_names"][150] == "flag"
    label = np.asarray(Image.open(tmp_path / "data" / "test" / "label" / "ADE_val_00000001.png"))
    assert label.max() == 150  # ids kept as they are: 0 unlabeled, 1..150 the classes
    assert not (tmp_path / "data" / "train" / "inst").exists()


def test_ade20k_layout_is_said_and_can_be_named(tmp_path: Path) -> None:
    src = ade20k_tree(tmp_path / "download")
    code, out = cli("prep", src / "ADEChallengeData2016", tmp_path / "a", "--layout", "ade20k")
    assert code == 0 and "from the ade20k layout" in " ".join(out.split())
    code, out = cli("prep", src, tmp_path / "b", "--layout", "cityscapes")
    assert code == 2 and "not in the cityscapes layout" in out
    code, out = cli("prep", src, tmp_path / "c", "--layout", "coco")
    assert code == 2 and "--layout" in out and "ade20k" in out
    (src / "train_label").mkdir()
    code, out = cli("prep", src, tmp_path / "d")
    assert code == 2 and "looks like reference and like ade20k" in " ".join(out.split())


def test_a_run_on_ade20k_trains_without_instance_maps(tmp_path: Path) -> None:
    src = ade20k_tree(tmp_path / "download")
    assert cli("prep", src, tmp_path / "data", "--quiet")[0] == 0
    run = tmp_path / "run"
    code, out = cli("train-global", tmp_path / "data", "--run", run, *TINY, "--max-steps", "1")
    assert code == 0, out
    net = json.loads((run / "config.json").read_text())["config"]["net"]
    assert net["instance"] is False and net["label_nc"] == 151
    assert net["class_names"][0] == "unlabeled"
    code, out = cli("inspect", run)
    assert code == 0 and "instance" in out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing annotation", "has no partner in"),
        ("id out of range", "label value 151 >= label_nc 151"),
        ("truncated jpeg", "not a readable image"),
        ("other size", "make them the same size"),
    ],
)
def test_bad_ade20k_items_end_in_one_line(tmp_path: Path, damage: str, message: str) -> None:
    src = ade20k_tree(tmp_path / "download")
    base = src / "ADEChallengeData2016"
    annotation = base / "annotations" / "training" / "ADE_train_00000002.png"
    photo = base / "images" / "training" / "ADE_train_00000002.jpg"
    if damage == "missing annotation":
        annotation.unlink()
    elif damage == "id out of range":
        Image.fromarray(np.full((SIZE, SIZE), 151, np.uint8)).save(annotation)
    elif damage == "truncated jpeg":
        photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    else:
        Image.fromarray(np.zeros((SIZE, 2 * SIZE), np.uint8)).save(annotation)
    code, out = cli("prep", src, tmp_path / "data")
    line = " ".join(out.split())
    assert code == 2 and message in line and "ADE_train_00000002" in line, out
    assert len(out.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # nothing half-written


def celebamask_tree(
    root: Path, faces: int = 6, mapping: bool = True, neck_over_hair: bool = False
) -> Path:
    """`CelebAMask-HQ/` with 128x128 photos and 64x64 part masks in groups of 2000; faces 4
    and 5 come from CelebA's test partition (by the mapping file). `neck_over_hair` adds a
    neck mask overlapping the hair's left corner."""
    src = root / "CelebAMask-HQ"
    (src / "CelebA-HQ-img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(faces):
        photo = rng.integers(0, 256, (2 * SIZE, 2 * SIZE, 3), dtype=np.uint8)
        Image.fromarray(photo).save(src / "CelebA-HQ-img" / f"{i}.jpg", quality=90)
        group = src / "CelebAMask-HQ-mask-anno" / str(i // 2000)
        group.mkdir(parents=True, exist_ok=True)
        for part, (y0, y1, x0, x1) in {
            "skin": (8, 56, 8, 56),
            "nose": (28, 36, 28, 36),
            "hair": (0, 20, 0, 64),
            "hat": (0, 10, 16, 48),
            **({"neck": (12, 20, 0, 4)} if neck_over_hair else {}),
        }.items():
            mask = np.zeros((SIZE, SIZE, 3), np.uint8)
            mask[y0:y1, x0:x1] = 255
            Image.fromarray(mask).save(group / f"{i:05d}_{part}.png")
    if mapping:
        lines = ["idx orig_idx orig_file"] + [
            f"{i} {100 + i if i < 4 else 170000 + i} {i:06d}.jpg" for i in range(faces)
        ]
        (src / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    return src


# CelebAMask-HQ's own merge order (face_parsing/Data_preprocessing/g_mask.py in the
# download), which its official merged masks use, and the face-parsing (BiSeNet) project's.
DATASET_ORDER = [
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
    "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
]  # fmt: skip
FACE_PARSING_ORDER = [
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
]  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "order"),
    [
        ("auto", DATASET_ORDER),
        ("celebamask-hq", DATASET_ORDER),
        ("celebamask-hq-face-parsing", FACE_PARSING_ORDER),
    ],
)
def test_celebamask_parts_merge_in_the_datasets_order(
    tmp_path: Path, layout: str, order: list[str]
) -> None:
    src = celebamask_tree(tmp_path, neck_over_hair=True)
    code, out = cli("prep", src, tmp_path / "data", "--layout", layout, "--quiet", "--json")
    assert code == 0, out
    report = json.loads(out)
    expected_layout = "celebamask-hq" if layout == "auto" else layout
    assert report["source_layout"] == expected_layout and report["label_nc"] == 19
    assert report["counts"] == {"train": 4, "test": 2} and not report["instance"]
    assert report["class_names"] == order
    label = np.asarray(Image.open(tmp_path / "data" / "test" / "label" / "4.png"))
    assert label.shape == (64, 64)  # the photos are read at the masks' size
    assert label[60, 60] == 0 and label[40, 12] == order.index("skin")
    assert label[30, 30] == order.index("nose")  # drawn over skin in both orders
    assert label[5, 30] == order.index("hat") and label[5, 5] == order.index("hair")
    # where neck and hair overlap, the later part of the order wins: hair (13) over neck (17)
    # is drawn the other way round in the dataset's order
    later = "neck" if order.index("neck") > order.index("hair") else "hair"
    assert label[15, 2] == order.index(later)
    assert later == ("neck" if order is DATASET_ORDER else "hair")
    photo = Image.open(tmp_path / "data" / "test" / "img" / "4.png")
    assert photo.size == (64, 64)


def test_celebamask_without_the_mapping_file_splits_by_a_seeded_hash(tmp_path: Path) -> None:
    import zlib

    src = celebamask_tree(tmp_path, faces=12, mapping=False)
    code, out = cli("prep", src, tmp_path / "data", "--quiet", "--json")
    assert code == 0, out
    test = sorted(str(i) for i in range(12) if zlib.crc32(str(i).encode()) % 10 == 0)
    kept = {p.stem for p in (tmp_path / "data" / "test" / "label").glob("*.png")}
    assert sorted(kept) == test and json.loads(out)["counts"]["train"] == 12 - len(test)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("part of another size", "make the masks of a face one size"),
        ("missing photo", "face 2 has no photo"),
        ("no masks", "face 2 has no part masks"),
        ("truncated jpeg", "not a readable image"),
    ],
)
def test_bad_celebamask_faces_end_in_one_line(tmp_path: Path, damage: str, message: str) -> None:
    src = celebamask_tree(tmp_path)
    masks = src / "CelebAMask-HQ-mask-anno" / "0"
    photo = src / "CelebA-HQ-img" / "2.jpg"
    if damage == "part of another size":
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(masks / "00002_hair.png")
    elif damage == "missing photo":
        photo.unlink()
    elif damage == "no masks":
        for mask in masks.glob("00002_*.png"):
            mask.unlink()
    else:
        photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    code, out = cli("prep", src, tmp_path / "data")
    assert code == 2 and message in " ".join(out.split()), out
    assert len(out.strip().splitlines()) == 1 and not (tmp_path / "data").exists()
    code, out = cli("prep", src, tmp_path / "data", "--skip-bad", "--quiet", "--json")
    assert code == 0 and len(json.loads(out)["skipped"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["ade20k", "celebamask-hq"])
def test_the_recipe_runs_on_the_download(tmp_path: Path, dataset: str) -> None:
    if dataset == "ade20k":
        script, env = "ade20k.sh", {"ADE20K": str(ade20k_tree(tmp_path / "dl"))}
        run, results, images = (
            "ade20k_256",
            "ade20k_256",
            {"ADE_val_00000001.png", "ADE_val_00000002.png"},
        )
    else:
        script, env = "celebamask_hq.sh", {"CELEBAMASK": str(celebamask_tree(tmp_path / "dl"))}
        run, results, images = "celebamask_512", "celebamask_512", {"4.png", "5.png"}
    result = run_recipe(script, tmp_path, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    net = json.loads((tmp_path / "runs" / run / "config.json").read_text())["config"]["net"]
    assert net["instance"] is False and net["label_nc"] in (151, 19)
    written = {p.name for p in (tmp_path / "results" / results).glob("*.png")}
    assert written == images and (tmp_path / "results" / results / "index.html").is_file()


def test_evaluation_ignores_the_unlabeled_ids_of_ade20k_and_coco_stuff() -> None:
    from p2phd.eval.segmenter import IGNORE, label_lookup

    ade = label_lookup("ade20k", 151)
    assert ade[0] == IGNORE and ade[1] == 0 and ade[150] == 149
    coco = label_lookup("coco-stuff", 183)
    assert coco[0] == IGNORE and coco[1] == 0 and coco[182] == 181
