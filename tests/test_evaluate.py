"""p2phd evaluate: FID, KID and segmentation accuracy as the field computes them, the FID
Inception in pytorch-fid's layout, segmenters as TorchScript, the toy's oracle segmenter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from p2phd import downloads
from p2phd.eval import metrics
from p2phd.nets.inception import FIDInception, load_fid_inception
from p2phd.weights import sha256_file

from helpers import TINY, cli, one_line

KEYS = Path(__file__).parent / "data" / "reference_keys" / "fid_inception_v3.txt"


def reference_shapes() -> list[tuple[str, list[int]]]:
    lines = [line.split(" ", 1) for line in KEYS.read_text().splitlines()[1:]]
    return [(k, json.loads(shape)) for k, shape in lines]


# ---- the formulas ------------------------------------------------------------------------
def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = np.random.default_rng(0).normal(size=(50, 16))
    assert abs(metrics.fid(x, x)) < 1e-6


def test_fid_matches_the_closed_form_of_two_gaussians() -> None:
    rng = np.random.default_rng(1)
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # shared eigenvectors: the S1 S2 commute
    l1, l2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(l1 + l2 - 2 * np.sqrt(l1 * l2))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-10)
    general = rng.normal(size=(d, d))  # not commuting: against the eigenvalue identity
    s3 = general @ general.T
    eig = np.linalg.eigvals(s1 @ s3)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s3) - 2 * np.sum(np.sqrt(eig.real))
    assert metrics.frechet_distance(mu1, s1, mu2, s3) == pytest.approx(expected, rel=1e-9)


def test_fid_is_finite_with_singular_covariances() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 64)), rng.normal(size=(5, 64)) + 0.5  # fewer images than dims
    value = metrics.fid(a, b)
    assert np.isfinite(value) and value > 0


def test_kid_is_unbiased() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    mean, std = metrics.kid(a, b, subsets=50, subset_size=100)
    assert abs(mean) < 2 * std + 1e-4  # same distribution: about 0, either sign
    shifted, _ = metrics.kid(a, b + 1.0, subsets=50, subset_size=100)
    assert shifted > 10 * std


def test_segmentation_scores_from_a_confusion_matrix() -> None:
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    m = metrics.confusion(truth, pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    s = metrics.segmentation_scores(m)
    assert s.pixel_accuracy == pytest.approx(5 / 7)
    assert s.mean_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert s.iou == pytest.approx({0: 1 / 3, 1: 3 / 4, 2: 1 / 2})
    assert s.miou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)


# ---- the Inception ------------------------------------------------------------------------
def test_the_fid_inception_has_pytorch_fids_layout() -> None:
    with torch.device("meta"):
        net = FIDInception()
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == reference_shapes()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random weights in pytorch-fid's layout, as .pth and as .safetensors."""
    folder = tmp_path_factory.mktemp("inception")
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in reference_shapes():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    torch.save(state, folder / "pt_inception.pth")
    save_file(state, str(folder / "pt_inception.safetensors"))
    return {"pth": folder / "pt_inception.pth", "safetensors": folder / "pt_inception.safetensors"}


def test_the_inception_loads_strictly_from_both_formats(
    inception_weights: dict[str, Path], tmp_path: Path
) -> None:
    a, b = (load_fid_inception(inception_weights[k]) for k in ("pth", "safetensors"))
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        fa, fb = a(x), b(x)
    assert fa.shape == (2, 2048) and torch.equal(fa, fb)
    state = torch.load(inception_weights["pth"], weights_only=True)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "cut.pth")
    fake, real, _ = folders(tmp_path)
    code, out = cli(
        "evaluate",
        "--fake",
        fake,
        "--real",
        real,
        "--out",
        tmp_path / "e",
        "--inception",
        tmp_path / "cut.pth",
    )
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "cut.pth: not pytorch-fid's FID Inception v3 (missing (1)" in out


def test_the_fetched_inception_is_the_default(
    inception_weights: dict[str, Path], tmp_path: Path
) -> None:
    fake, real, _ = folders(tmp_path)
    scored = ["evaluate", "--fake", fake, "--real", real, "--out", tmp_path / "e", "--json"]
    code, out = cli(*scored, "--kid-subset-size", "2")
    assert code == 0 and "fid" not in json.loads(out)
    assert "p2phd weights fetch inception" in " ".join(json.loads(out)["notes"])
    cache = downloads.cache_dir()
    cache.mkdir(parents=True)
    shutil.copy(inception_weights["pth"], cache / "pt_inception-2015-12-05-6726825d.pth")
    code, out = cli(*scored, "--kid-subset-size", "2")
    assert code == 0 and np.isfinite(json.loads(out)["fid"])
    digest = sha256_file(inception_weights["pth"])
    assert json.loads(out)["weights"]["inception_sha256"] == digest


# ---- scoring folders ------------------------------------------------------------------------
class Threshold(nn.Module):
    """A known segmenter: class 1 where red > 0.5, else class 0 (2 classes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1]
        return torch.cat([0.5 - red, red - 0.5], 1)


def write_scripted(module: nn.Module, path: Path) -> Path:
    torch.jit.script(module).save(str(path))
    return path


def folders(root: Path) -> tuple[Path, Path, Path]:
    """Two 16x16 pairs: fakes red in the left half (a) and top-left quarter (b), reals red in
    the left half, labels 1 in the left half."""
    fake, real, labels = (root / n for n in ("fake", "real", "labels"))
    for folder in (fake, real, labels):
        folder.mkdir()
    for key, rows in (("a", slice(0, 16)), ("b", slice(0, 8))):
        f = np.zeros((16, 16, 3), np.uint8)
        f[rows, :8, 0] = 255
        Image.fromarray(f).save(fake / f"{key}.png")
        r = np.zeros((16, 16, 3), np.uint8)
        r[:, :8, 0] = 255
        Image.fromarray(r).save(real / f"{key}.png")
        label = np.zeros((16, 16), np.uint8)
        label[:, :8] = 1
        Image.fromarray(label).save(labels / f"{key}_gtFine_labelIds.png")
    return fake, real, labels


def test_known_logits_give_known_iou(tmp_path: Path, inception_weights: dict[str, Path]) -> None:
    fake, real, labels = folders(tmp_path)
    segmenter = write_scripted(Threshold(), tmp_path / "seg.pt")
    code, out = cli(
        "evaluate",
        "--fake",
        fake,
        "--real",
        real,
        "--labels",
        labels,
        "--out",
        tmp_path / "e",
        "--segmenter",
        segmenter,
        "--label-nc",
        "2",
        "--inception",
        inception_weights["safetensors"],
        "--json",
        "--kid-subset-size",
        "2",
    )
    assert code == 0, out
    s = json.loads(out)
    # a: perfect; b: 64 of 128 class-1 pixels found. Class 1: 192 / 256; class 0: 256 / 320.
    assert s["segmentation"]["iou"] == pytest.approx({"0": 256 / 320, "1": 192 / 256})
    assert s["segmentation"]["pixel_accuracy"] == pytest.approx(448 / 512)
    assert s["segmentation_real"]["miou"] == 1.0
    assert [v["key"] for v in s["per_image"]] == ["b", "a"]  # the worst first
    assert s["per_image"][1]["psnr"] == float("inf") or "psnr" not in s["per_image"][1]
    assert np.isfinite(s["fid"]) and s["kid"]["subset_size"] == 2
    assert (
        len(s["weights"]["segmenter_sha256"]) == 64 and len(s["weights"]["inception_sha256"]) == 64
    )
    page = (tmp_path / "e" / "index.html").read_text()
    assert page.index("b: miou 0.5") < page.index("a: miou 1.0")
    assert (tmp_path / "e" / "eval.json").is_file()


@pytest.mark.parametrize(
    "spoil",
    ["count", "empty", "not_an_image", "classes"],
)
def test_bad_input_is_one_line(tmp_path: Path, spoil: str) -> None:
    fake, real, labels = folders(tmp_path)
    segmenter = write_scripted(Threshold(), tmp_path / "seg.pt")
    expected = {
        "count": "no partner with the key 'c'",
        "empty": "holds no synthesized images",
        "not_an_image": "not a readable image",
        "classes": "predicts 2 classes but the labels reach 5",
    }[spoil]
    if spoil == "count":
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(fake / "c.png")
    elif spoil == "empty":
        for p in fake.iterdir():
            p.unlink()
    elif spoil == "not_an_image":
        (fake / "a.png").write_bytes(b"not a png")
    else:
        Image.fromarray(np.full((16, 16), 5, np.uint8)).save(labels / "a_gtFine_labelIds.png")
    code, out = cli(
        "evaluate",
        "--fake",
        fake,
        "--real",
        real,
        "--labels",
        labels,
        "--out",
        tmp_path / "e",
        "--segmenter",
        segmenter,
        "--label-nc",
        "8",
    )
    assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert expected in out, out


@pytest.mark.parametrize("option", ["--inception", "--segmenter"])
def test_a_missing_weights_file_stops_before_any_synthesis(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, option: str
) -> None:
    """One line, exit 2, and not a single image synthesized first (it was a traceback, and
    only after the whole split had been synthesized)."""
    code, out = cli(
        "evaluate", tiny_feature_run, toy_data, option, tmp_path / "MISSING.pth",
        "--out", tmp_path / "e", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert f"{option} {tmp_path / 'MISSING.pth'}: not found" in out, out
    if option == "--inception":
        assert "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" in out
    assert not (tmp_path / "e").exists()
    code, out = cli(
        "evaluate", "--fake", tmp_path, "--real", tmp_path, "--out", tmp_path / "f",
        option, tmp_path / "MISSING.pth",
    )  # fmt: skip
    assert code == 2 and "not found" in out and not (tmp_path / "f").exists(), out


def test_folders_of_two_sizes_score_what_can_be_scored(tmp_path: Path) -> None:
    """FID and KID resize every image, so a photo of another size still counts for them;
    PSNR and mIoU, which compare pixel by pixel, leave that pair out and say so with the
    sizes (it was an error that scored nothing)."""
    fake, real, labels = folders(tmp_path)
    Image.fromarray(np.zeros((16, 8, 3), np.uint8)).save(real / "a.png")
    segmenter = write_scripted(Threshold(), tmp_path / "seg.pt")
    code, out = cli(
        "evaluate", "--fake", fake, "--real", real, "--labels", labels, "--out", tmp_path / "e",
        "--segmenter", segmenter, "--label-nc", "8", "--quiet", "--json",
    )  # fmt: skip
    assert code == 0, out
    scores = json.loads(out)
    per_image = {s["key"]: s for s in scores["per_image"]}
    assert "psnr" not in per_image["a"] and "psnr" in per_image["b"]
    note = next(n for n in scores["notes"] if n.startswith("PSNR and mIoU skipped for 1 pair"))
    assert f"{real / 'a.png'} is 8x16 but {fake / 'a.png'} is 16x16" in note


def test_a_split_without_photos_points_to_one_with_them(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    shutil.rmtree(data / "test" / "img")
    code, out = cli("evaluate", tiny_feature_run, data, "--out", tmp_path / "e", "--quiet")
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "the test split has no photos" in out and "--split train" in out
    assert not (tmp_path / "e").exists()  # nothing synthesized first


# ---- the toy's oracle, and a run ------------------------------------------------------------
def test_the_toy_segmenter_reads_real_toy_photos(toy_source: Path) -> None:
    """The exact rule of the toy's colours: mIoU >= 0.90 on real photos (0.997 measured)."""
    from p2phd.eval.metrics import confusion, segmentation_scores
    from p2phd.eval.segmenter import Convention, Segmenter

    seg = Segmenter(toy_source / "segmenter.pt2", Convention(), torch.device("cpu"))
    m = np.zeros((8, 8), np.int64)
    for photo in sorted((toy_source / "train_img").glob("*.png")):
        label = np.asarray(Image.open(toy_source / "train_label" / photo.name))
        image = torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)[None]
        m += confusion(label, seg(image)[0].numpy(), 8)
    assert segmentation_scores(m).miou >= 0.90


def test_evaluate_a_run(toy_data: Path, toy_source: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "2")[0] == 0
    code, out = cli(
        "evaluate",
        run,
        toy_data,
        "--segmenter",
        toy_source / "segmenter.pt2",
        "--device",
        "cpu",
        "--quiet",
        "--json",
    )
    assert code == 0, out
    s = json.loads(out)
    assert s["count"] == 2 and s["split"] == "test" and 0 <= s["segmentation"]["miou"] < 1
    assert s["segmentation_real"]["miou"] >= 0.9 and np.isfinite(s["psnr"])
    assert s["class_names"]["6"] == "car" and any("--inception" in n for n in s["notes"])
    assert (run / "eval-test" / "images" / "toy_test_00000.png").is_file()


@pytest.mark.slow
def test_a_short_training_reaches_a_quality_floor(tmp_path: Path) -> None:
    """Learning works: 200 steps of the tiny net on toy scenes lift the toy segmenter's mIoU
    on the synthesized test images from about 0.10 (untrained) to 0.35 (measured on this
    machine); the floor leaves room for other CPUs' rounding, not for a net that does not
    learn."""
    src, data, run = tmp_path / "src", tmp_path / "data", tmp_path / "run"
    assert cli("toy", src, "--train", "8", "--test", "4", "--quiet")[0] == 0
    assert cli("prep", src, data, "--multiple", "16", "--quiet")[0] == 0
    code, out = cli("train-global", data, "--run", run, *TINY, "--max-steps", "200")
    assert code == 0, out
    code, out = cli(
        "evaluate",
        run,
        data,
        "--segmenter",
        src / "segmenter.pt2",
        "--device",
        "cpu",
        "--quiet",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["segmentation"]["miou"] >= 0.22, out


EVIL = "open({marker!r}, 'w').write('pwned')"


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (EVIL.format(marker=self.marker),))


def test_a_malicious_pt2_segmenter_runs_no_code(tmp_path: Path, toy_source: Path) -> None:
    """torch.export.load would unpickle a .pt2's sample inputs without restriction when the
    weights-only read fails: a file built that way ran code (issue 23)."""
    import io
    import pickle
    import zipfile

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(toy_source / "segmenter.pt2") as src, zipfile.ZipFile(evil, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if "/data/sample_inputs/" in f"/{info.filename}":
                buffer = io.BytesIO()
                pickle.dump(_Evil(str(marker)), buffer)
                data = buffer.getvalue()
            out.writestr(info, data)
    fake = tmp_path / "fake"
    fake.mkdir()
    Image.new("RGB", (32, 32)).save(fake / "a.png")
    code, out = cli("evaluate", "--fake", fake, "--real", fake, "--labels", fake, "--out",
                    tmp_path / "e", "--segmenter", evil, "--label-nc", "256")  # fmt: skip
    assert not marker.exists(), "the segmenter file ran code"
    assert code == 2 and "sample_inputs" in out and "unrestricted pickle" in out, out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--segmenter", "--inception"])
def test_a_damaged_scorer_is_refused_before_the_split_is_synthesized(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, option: str
) -> None:
    """evaluate synthesized the whole split before it loaded the scorer that then failed."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model" * 64)
    out = tmp_path / "e"
    code, text = cli("evaluate", tiny_feature_run, toy_data, "--out", out, option, bad,
                     "--device", "cpu")  # fmt: skip
    one_line(code, text, f"{option} {bad}")
    assert not (out / "images").exists()
