"""prep --palette: colour-coded label maps (CamVid, CMP facades, GTA5, Mapillary previews)
become class ids by a palette file (JSON or CSV) or Cityscapes' own colours; the names come
from the palette, and an unknown colour stops prep with its count and first position."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2phd.data.palette import load_palette
from p2phd.errors import DatasetError

from helpers import cli

ROAD, SKY, CAR = (128, 64, 128), (70, 130, 180), (0, 0, 142)


def colour_source(root: Path, count: int = 2, stray: tuple[int, int, int] | None = None) -> Path:
    """A reference-layout source of colour-coded 64x32 label maps: road, sky on top, a car;
    `stray` paints a 2x3 patch at x=10..12, y=20..21 of the last map."""
    for role in ("train_label", "train_img"):
        (root / role).mkdir(parents=True)
    for i in range(count):
        label = np.zeros((32, 64, 3), np.uint8)
        label[:] = ROAD
        label[:10] = SKY
        label[20:, 40:50] = CAR
        if stray is not None and i == count - 1:
            label[20:22, 10:13] = stray
        Image.fromarray(label).save(root / "train_label" / f"{i}.png")
        Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(root / "train_img" / f"{i}.png")
    return root


def prepped_labels(data: Path) -> tuple[dict, np.ndarray]:
    manifest = json.loads((data / "dataset.json").read_text())
    return manifest, np.asarray(Image.open(data / "train" / "label" / "0.png"))


def test_a_camvid_style_csv_gives_ids_by_row_and_its_names(tmp_path: Path) -> None:
    src = colour_source(tmp_path / "src")
    palette = tmp_path / "class_dict.csv"
    palette.write_text("name,r,g,b\nvoid,0,0,0\nroad,128,64,128\nsky,70,130,180\ncar,0,0,142\n")
    code, out = cli("prep", src, tmp_path / "data", "--palette", palette)
    assert code == 0, out
    assert "label_nc 4 (from --palette, max label 3)" in out
    manifest, label = prepped_labels(tmp_path / "data")
    assert manifest["label_nc"] == 4 and manifest["class_names"] == ["void", "road", "sky", "car"]
    expected = np.full((32, 64), 1)
    expected[:10], expected[20:, 40:50] = 2, 3
    np.testing.assert_array_equal(label, expected)


def test_a_json_palette_takes_ids_hex_colours_and_merged_classes(tmp_path: Path) -> None:
    src = colour_source(tmp_path / "src")
    palette = tmp_path / "palette.json"
    palette.write_text(
        json.dumps(
            [
                {"id": 5, "name": "ground", "colour": list(ROAD)},
                {"id": 5, "name": "ground", "color": "#4682b4"},  # sky merged into ground
                {"id": 2, "name": "vehicle", "colour": list(CAR)},
            ]
        )
    )
    code, out = cli("prep", src, tmp_path / "data", "--palette", palette)
    assert code == 0, out
    manifest, label = prepped_labels(tmp_path / "data")
    assert manifest["label_nc"] == 6
    assert manifest["class_names"] == [
        "class 0",
        "class 1",
        "vehicle",
        "class 3",
        "class 4",
        "ground",
    ]
    assert set(np.unique(label[:20])) == {5} and (label[20:, 40:50] == 2).all()


def test_cityscapes_colours_are_built_in(tmp_path: Path) -> None:
    src = colour_source(tmp_path / "src")
    code, out = cli("prep", src, tmp_path / "data", "--palette", "cityscapes")
    assert code == 0, out
    manifest, label = prepped_labels(tmp_path / "data")
    assert manifest["label_nc"] == 35 and manifest["class_names"][26] == "car"
    assert label[0, 0] == 23 and label[31, 0] == 7 and label[25, 45] == 26  # sky, road, car
    black = load_palette("cityscapes")  # ids 0-4 are all black: a black pixel is "unlabeled"
    assert black.ids_of(Path("x"), np.zeros((1, 1, 3), np.uint8))[0, 0] == 0


def test_an_unknown_colour_stops_prep_with_its_count_and_first_position(tmp_path: Path) -> None:
    src = colour_source(tmp_path / "src", stray=(1, 2, 3))
    code, out = cli("prep", src, tmp_path / "data", "--palette", "cityscapes")
    assert code == 2
    assert (
        "1.png: colour (1, 2, 3) is not in the palette cityscapes: 6 pixels, the first at "
        "x=10, y=20; add it to the palette or fix the map" in out
    )
    assert "Traceback" not in out and not (tmp_path / "data").exists()
    code, out = cli("prep", src, tmp_path / "data", "--palette", "cityscapes", "--skip-bad")
    assert code == 0 and "1 skipped" in out, out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,r,g,b\nroad,128,64,128\nsky,128,64,128\n", "given to class 0 and to class 1"),
        ("name,r,g,b\nroad,128,64,300\n", "entry 1 needs a colour of three values 0-255"),
        ("name,red\nroad,1\n", "needs a header with r, g, b (or colour) columns"),
        ('[{"colour": [1, 2, 3], "name": "7"}]', "'7' cannot be a class name"),
        (
            '[{"id": 1, "name": "a", "colour": [1, 2, 3]}, {"id": 1, "name": "b", "colour": '
            "[4, 5, 6]}]",
            "class 1 is called 'a' and 'b'",
        ),
        ("[1, 2]", "a JSON palette is a list of objects"),
    ],
)
def test_bad_palettes_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / ("p.json" if text.startswith("[") else "p.csv")
    path.write_text(text)
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_palette(str(path))


def test_palette_conflicts_with_other_class_options(tmp_path: Path) -> None:
    src = colour_source(tmp_path / "src")
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    code, out = cli("prep", src, tmp_path / "d", "--palette", "cityscapes", "--class-names", names)
    assert code == 2 and "--palette names the classes; drop --class-names" in out
    code, out = cli("prep", src, tmp_path / "d", "--palette", "cityscapes", "--label-nc", "20")
    assert code == 2 and "--label-nc 20: the palette cityscapes has ids up to 34" in out
    code, out = cli("prep", src, tmp_path / "d", "--palette", tmp_path / "none.json")
    assert code == 2 and "not a readable file" in out and "cityscapes" in out
