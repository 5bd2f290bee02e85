"""Toy scenes: consistent label/instance/photo maps, touching cars, known car colours."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from p2phd.cli import app
from p2phd.data.toy import (
    CAR_PALETTE,
    PERSON_PALETTE,
    THING_CLASSES,
    TOY_CLASSES,
    TOY_LABEL_NC,
    ToyScene,
    make_scene,
    write_toy_dataset,
)
from p2phd.errors import DatasetError

CAR, PERSON = 6, 7
SEEDS = range(10)


@functools.cache
def scene(seed: int, height: int = 64, width: int = 128) -> ToyScene:
    return make_scene(seed, height, width)


def car_ids(s: ToyScene) -> list[int]:
    return [i for i in np.unique(s.instance).tolist() if i // 1000 == CAR]


def touching_car_pairs(instance: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different car instances that are 4-neighbours somewhere."""
    pairs = set()
    for a, b in ((instance[:, :-1], instance[:, 1:]), (instance[:-1], instance[1:])):
        both = (a // 1000 == CAR) & (b // 1000 == CAR) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[both].tolist(), b[both].tolist(), strict=True)}
    return pairs


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_classes_and_palettes() -> None:
    assert TOY_CLASSES[CAR] == "car" and TOY_CLASSES[PERSON] == "person"
    assert TOY_LABEL_NC == 8 and THING_CLASSES == (CAR, PERSON)
    assert len(CAR_PALETTE) == 4 and len(PERSON_PALETTE) == 3
    for a, b in itertools.combinations(np.array(CAR_PALETTE, float), 2):
        assert np.linalg.norm(a - b) > 120  # far apart, so clustering can tell them apart
    road_grey = np.array([95, 95, 99])
    assert all(np.linalg.norm(np.array(c) - road_grey) > 120 for c in CAR_PALETTE)


def test_same_seed_same_scene_and_different_seed_differs() -> None:
    a, b, c = make_scene(3, 64, 128), make_scene(3, 64, 128), make_scene(4, 64, 128)
    for name in ("label", "instance", "image"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.styles == b.styles
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.label, c.label)


@pytest.mark.parametrize(
    ("height", "width"), [(32, 64), (64, 128), (512, 1024), (96, 96), (160, 64)]
)
def test_shapes_dtypes_and_layout(height: int, width: int) -> None:
    s = scene(0, height, width)
    assert s.label.shape == s.instance.shape == (height, width)
    assert s.image.shape == (height, width, 3)
    assert (s.label.dtype, s.instance.dtype, s.image.dtype) == (np.uint8, np.int64, np.uint8)
    assert (s.label[0] == TOY_CLASSES.index("sky")).all()  # sky on top
    assert np.isin(s.label[-1], [TOY_CLASSES.index("road"), CAR]).all()  # road at the bottom
    assert set(np.unique(s.label).tolist()) >= {0, 1, 2, CAR}


@pytest.mark.parametrize(("height", "width"), [(31, 128), (64, 31), (0, 0)])
def test_rejects_tiny_sizes(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="32"):
        make_scene(0, height, width)


@pytest.mark.parametrize("seed", SEEDS)
def test_label_and_instance_maps_agree(seed: int) -> None:
    s = scene(seed)
    assert s.label.max() < TOY_LABEL_NC
    thing = np.isin(s.label, THING_CLASSES)
    np.testing.assert_array_equal(s.instance[thing] // 1000, s.label[thing])
    np.testing.assert_array_equal(s.instance[~thing], s.label[~thing])
    ids = [i for i in np.unique(s.instance).tolist() if i >= 1000]
    assert sorted(s.styles) == ids  # a style for every instance, and only for those
    for i, style in s.styles.items():
        palette = CAR_PALETTE if i // 1000 == CAR else PERSON_PALETTE
        assert style["class"] == i // 1000
        assert style["rgb"] == list(palette[style["palette_index"]])
    assert 2 <= len(car_ids(s)) <= 4


def test_most_scenes_have_touching_cars_that_only_the_instance_map_separates() -> None:
    with_pair = 0
    for seed in SEEDS:
        s = scene(seed)
        pairs = touching_car_pairs(s.instance)
        with_pair += bool(pairs)
        for a, _ in pairs:  # the label map sees one car blob across the shared border
            assert (s.label[s.instance == a] == CAR).all()
    assert with_pair >= 8


@pytest.mark.parametrize(("height", "width"), [(32, 64), (64, 128), (128, 128), (96, 384)])
def test_cars_are_big_and_keep_their_palette_colour(height: int, width: int) -> None:
    for seed in range(5):
        s = scene(seed, height, width)
        for i in car_ids(s):
            mask = s.instance == i
            assert mask.mean() >= 1 / 64  # survives the small-instance filter
            mean = s.image[mask].astype(float).mean(axis=0)
            assert np.linalg.norm(mean - s.styles[i]["rgb"]) < 40, (seed, i, mean)
        people = [i for i in s.styles if i // 1000 == PERSON]
        if people:
            largest_person = max((s.instance == i).sum() for i in people)
            assert largest_person < min((s.instance == i).sum() for i in car_ids(s))


def test_write_toy_dataset(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    ticks = []
    summary = write_toy_dataset(
        out, n_train=3, n_test=2, height=64, width=128, seed=7, progress=lambda: ticks.append(1)
    )
    assert summary == {
        "out": str(out),
        "train": 3,
        "test": 2,
        "height": 64,
        "width": 128,
        "label_nc": 8,
    }
    assert len(ticks) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # no temporary folder left over
    meta = json.loads((out / "toy.json").read_text())
    assert meta["schema_version"] == 1 and meta["label_nc"] == 8
    assert meta["classes"] == list(TOY_CLASSES) and meta["thing_classes"] == [6, 7]
    assert meta["car_class"] == 6 and meta["car_palette"] == [list(c) for c in CAR_PALETTE]
    assert meta["person_palette"] == [list(c) for c in PERSON_PALETTE]
    assert (meta["height"], meta["width"], meta["seed"]) == (64, 128, 7)
    names = {
        "train": [f"toy_{i:05d}" for i in range(3)],
        "test": [f"toy_test_{i:05d}" for i in range(2)],
    }
    assert sorted(meta["scenes"]) == sorted(names["train"] + names["test"])
    photos = []
    for split, stems in names.items():
        for kind in ("label", "inst", "img"):
            assert sorted(p.stem for p in (out / f"{split}_{kind}").iterdir()) == stems
        for name in stems:
            label = read(out / f"{split}_label" / f"{name}.png")
            inst = read(out / f"{split}_inst" / f"{name}.png")
            photo = read(out / f"{split}_img" / f"{name}.png")
            assert label.dtype == np.uint8 and label.shape == (64, 128)
            assert inst.dtype == np.uint16 and photo.shape == (64, 128, 3)
            thing = inst >= 1000
            np.testing.assert_array_equal(inst[thing] // 1000, label[thing])
            np.testing.assert_array_equal(inst[~thing], label[~thing])
            entry = meta["scenes"][name]
            assert entry["split"] == split
            assert sorted(entry["instances"]) == sorted(str(i) for i in np.unique(inst[thing]))
            for key, style in entry["instances"].items():
                assert style["class"] == int(key) // 1000
                if style["class"] == CAR:
                    mean = photo[inst == int(key)].astype(float).mean(axis=0)
                    assert np.linalg.norm(mean - style["rgb"]) < 40
            photos.append(photo)
    assert not any(np.array_equal(a, b) for a, b in itertools.combinations(photos, 2))


def test_written_scenes_are_reproducible(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_toy_dataset(tmp_path / name, n_train=1, n_test=1, height=32, width=64, seed=3)
    for rel in ("train_inst/toy_00000.png", "test_img/toy_test_00000.png", "toy.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write_toy_dataset(tmp_path / "empty", n_train=1, n_test=0, height=32, width=64, seed=0)
    assert (tmp_path / "empty" / "train_img" / "toy_00000.png").is_file()
    assert not (tmp_path / "empty" / "test_img").exists()  # no empty split for prep to refuse
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        write_toy_dataset(tmp_path / "empty", n_train=1, n_test=0, height=32, width=64, seed=0)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_toy_dataset(tmp_path / "t", n_train=0, n_test=1, height=64, width=128, seed=0)
    with pytest.raises(ValueError):
        write_toy_dataset(tmp_path / "t", n_train=1, n_test=1, height=16, width=128, seed=0)
    assert not any(tmp_path.iterdir())


def test_interrupted_run_leaves_nothing(tmp_path: Path) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_toy_dataset(
            tmp_path / "t", n_train=2, n_test=1, height=32, width=64, seed=0, progress=interrupt
        )
    assert not any(tmp_path.iterdir())


def test_cli_toy(tmp_path: Path) -> None:
    out = tmp_path / "t"
    args = ["toy", str(out), "--train", "2", "--test", "1", "--quiet"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert len(list((out / "train_img").glob("*.png"))) == 2
    assert len(list((out / "test_inst").glob("*.png"))) == 1
    assert (out / "toy.json").is_file()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 2
    assert str(out) in second.output
    assert "not empty" in second.output


def test_cli_toy_bad_size_is_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["toy", str(tmp_path / "t"), "--height", "8", "--quiet"])
    assert result.exit_code == 2 and ">= 32" in result.output
