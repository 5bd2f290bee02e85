"""`p2phd evaluate`: how good is a run. Synthesize a split's label maps through the synthesis
core, then score the images against the split's photos: FID and KID (pytorch-fid's
Inception), the paper's segmentation accuracy (a segmenter the user provides; pixel
accuracy, mean accuracy, mIoU, per-class IoU, on the fakes and on the real photos for
reference) and PSNR of each pair. Any two folders of images can be scored the same way.
Writes eval.json (every number, the options, the weight files' hashes) and an index.html.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import p2phd
from p2phd import datasets
from p2phd.atomic import check_apart, make_dirs, write_text
from p2phd.data.io import check_ids, read_id_map, read_rgb, resize_ids, resize_rgb
from p2phd.data.names import class_name
from p2phd.downloads import cached, known
from p2phd.errors import ConfigError, DatasetError
from p2phd.eval import metrics
from p2phd.eval.page import write_page
from p2phd.eval.pairing import Pair, pair_folders
from p2phd.eval.scores import ImageScore, Kid, Scores
from p2phd.eval.segmenter import IGNORE, Convention, Segmenter, label_lookup
from p2phd.limits import MAX_LABEL_NC, check_range, check_seed
from p2phd.nets.inception import load_fid_inception
from p2phd.runtime import DeviceOptions
from p2phd.synth.folder import SynthOptions, synthesize
from p2phd.synth.run import Run
from p2phd.synth.synthesizer import Synthesizer
from p2phd.weights import sha256_file

Progress = Callable[[int, int], None]


_FETCH = known("inception").fetch_hint()


@dataclass(frozen=True)
class EvalOptions:
    """What `evaluate` scores besides PSNR: FID and KID with `inception` (pytorch-fid's
    weights), segmentation accuracy with `segmenter` under its `convention`."""

    inception: Path | None = None
    segmenter: Path | None = None
    convention: Convention = field(default_factory=Convention)
    label_map: str = "auto"  # auto: the known dataset's (cityscapes, ade20k, ...), else identity
    ignore_index: int = IGNORE
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    batch_size: int = 8
    use_cached_inception: bool = True  # no --inception: the one `p2phd weights fetch` cached
    encoded_styles: bool = False  # feature runs: styles E encodes from the split's photos

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ConfigError("--batch-size and --kid-subsets must be >= 1, --kid-subset-size >= 2")
        check_seed(self.seed)
        # a class id of the looked-up labels (the label map gives them, 255: not scored)
        check_range(self.ignore_index, "--ignore-index", 0, MAX_LABEL_NC)

    def checked(self) -> EvalOptions:
        """These options with the cached Inception (`p2phd weights fetch inception`) where
        none is given, and the weights files there: checked before any image is
        synthesized, so a typo costs a second, not a whole split's synthesis."""
        opts = self
        if (
            opts.inception is None
            and opts.use_cached_inception
            and (path := cached("inception")) is not None
        ):
            opts = dataclasses.replace(opts, inception=path)
        opts.check_files()
        return opts

    def check_files(self) -> None:
        """The weights files given are there (`open_scorers` loads them)."""
        wanted = {
            "--inception": (self.inception, f"pass pytorch-fid's weights, or {_FETCH}"),
            "--segmenter": (self.segmenter, "pass a TorchScript (.pt) or torch.export (.pt2) file"),
        }
        for option, (path, fix) in wanted.items():
            if path is not None and not Path(path).is_file():
                raise DatasetError(f"{option} {path}: not found; {fix}")


@dataclass(frozen=True)
class Scorers:
    """The options' segmenter and Inception, loaded, and their files' SHA-256 (eval.json
    records them): opened before the work that needs them, so a damaged file is refused
    before a split is synthesized, not after."""

    segmenter: Segmenter | None
    inception: Any
    weights: dict[str, str]


def open_scorers(opts: EvalOptions, device: torch.device) -> Scorers:
    """Load the scorers `opts` names onto `device` (their files checked by `checked`)."""
    opts.check_files()
    weights: dict[str, str] = {}
    segmenter = None
    if opts.segmenter is not None:
        segmenter = Segmenter(Path(opts.segmenter), opts.convention, device)
        weights["segmenter_sha256"] = sha256_file(Path(opts.segmenter))
    inception = None
    if opts.inception is not None:
        weights["inception_sha256"] = sha256_file(Path(opts.inception))
        inception = load_fid_inception(Path(opts.inception)).to(device)
    return Scorers(segmenter, inception, weights)


@dataclass(frozen=True)
class EvalReport:
    out: Path
    scores: Scores
    index: Path

    def to_dict(self) -> dict[str, Any]:
        return {**self.scores.to_dict(), "out": str(self.out), "index": str(self.index)}


def evaluate_run(
    run: Run,
    data: Path,
    out: Path,
    *,
    split: str = "test",
    width: int | None = None,
    options: EvalOptions | None = None,
    device: DeviceOptions | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Synthesize `data`'s split with the run (default styles, the run's training width),
    then score the images against the split's photos and label maps."""
    opts = (options or EvalOptions()).checked()
    device = device or DeviceOptions()
    split_dir = Path(data) / split
    if not (split_dir / "label").is_dir():
        raise DatasetError(
            f"{split_dir}/label: missing; pass a prepped dataset (p2phd prep) "
            f"and a split it has (--split)"
        )
    if not (split_dir / "img").is_dir():
        raise DatasetError(
            f"{split_dir}/img: the {split} split has no photos to score against; pass a "
            "split with photos (--split train), or score folders with --fake and --real"
        )
    check_apart(out, [(f"the {split} split", split_dir)], "--out")  # the photos it scores
    run.check_output(out, "--out")
    scorers = open_scorers(opts, device.resolve()[0])
    net = run.net
    inst = [split_dir / "inst"] if net.instance else []
    # styles encoded from the split's own photos where asked (scoring during training, when
    # there is no style bank yet): the reference's --use_encoded_image
    encoded = net.use_features and opts.encoded_styles
    synth = SynthOptions(
        batch_size=opts.batch_size,
        width=width,
        save_labels=False,
        style_from=(split_dir / "img",) if encoded else (),
    )
    halfway = (lambda done, total: progress(done, 2 * total)) if progress else None
    synthesize(
        Synthesizer(run, device),
        [split_dir / "label"],
        Path(out) / "images",
        inst=inst,
        options=synth,
        progress=halfway,
    )
    pairs = pair_folders(Path(out) / "images", split_dir / "img", split_dir / "label")
    context = {"run": str(run.root), "data": str(data), "split": split, "width": width}
    return score(
        pairs,
        Path(out),
        net.label_nc,
        net.class_names,
        opts,
        context,
        progress,
        resize=True,
        device=device,
        scorers=scorers,
    )


def evaluate_folders(
    fake: Path,
    out: Path,
    *,
    real: Path | None = None,
    labels: Path | None = None,
    label_nc: int = 256,
    options: EvalOptions | None = None,
    device: DeviceOptions | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Score a folder of synthesized images against real photos (FID, KID, PSNR) and label
    maps (mIoU with a segmenter), paired by key; no run needed. `label_nc` bounds the label
    maps' class ids."""
    if real is None:
        raise ConfigError(
            f"--fake {fake}: give --real, the photos to score the images against (and "
            "--labels for mIoU)"
        )
    opts = (options or EvalOptions()).checked()
    folders = [("--fake", fake), ("--real", real), ("--labels", labels)]
    check_apart(out, [(what, path) for what, path in folders if path is not None], "--out")
    pairs = pair_folders(Path(fake), Path(real) if real else None, Path(labels) if labels else None)
    context = {"fake": str(fake), "real": str(real)}
    return score(pairs, Path(out), label_nc, (), opts, context, progress, device=device)


def score(
    pairs: list[Pair],
    out: Path,
    label_nc: int,
    names: tuple[str, ...],
    opts: EvalOptions,
    context: dict[str, Any],
    progress: Progress | None = None,
    *,
    resize: bool = False,
    device: DeviceOptions | None = None,
    scorers: Scorers | None = None,
) -> EvalReport:
    """Every score the options allow for the pairs; eval.json and index.html into `out`.

    Paired scores compare at the synthesized image's size: with `resize` (a run's images,
    made at its training width) the photo (bicubic) and the label map (nearest) are resized
    to it, as synthesis resized the label; otherwise sizes must agree."""
    dev, _ = (device or DeviceOptions()).resolve()
    scorers = scorers or open_scorers(opts, dev)
    segmenter, inception, weights = scorers.segmenter, scorers.inception, scorers.weights
    mapping = _mapping(opts.label_map, names, label_nc)
    tally = _Tally(segmenter, inception, mapping, opts, dev, resize, label_nc)
    for start in range(0, len(pairs), opts.batch_size):
        tally.add(pairs[start : start + opts.batch_size])
        if progress:  # after synthesis, scoring is the second half of the work
            progress(len(pairs) + min(start + opts.batch_size, len(pairs)), 2 * len(pairs))
    scores = dataclasses.replace(
        tally.summary(),
        version=p2phd.__version__,
        context=context,
        count=len(pairs),
        options=_options(opts),
        weights=weights,
        segmenter_classes=segmenter.num_classes if segmenter is not None else None,
        class_names=_class_names(mapping, names, label_nc),
    )
    make_dirs(out)
    write_text(
        out / "eval.json",
        json.dumps(scores.to_dict(), indent=2, sort_keys=True, default=str) + "\n",
    )
    index = write_page(out, scores, pairs)
    return EvalReport(out, scores, index)


@dataclass
class _Tally:
    """What scoring accumulates over the chunks of pairs: features, confusion matrices and
    per-image scores."""

    segmenter: Segmenter | None
    inception: Any
    mapping: np.ndarray
    opts: EvalOptions
    device: torch.device
    resize: bool
    label_nc: int  # label maps hold ids below this
    fake_features: list[np.ndarray] = field(default_factory=list)
    real_features: list[np.ndarray] = field(default_factory=list)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)  # "fake" / "real"
    per_image: list[ImageScore] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)  # pairs of two sizes: why each was left

    def add(self, chunk: list[Pair]) -> None:
        fakes = [read_rgb(p.fake) for p in chunk]
        reals = [read_rgb(p.real) for p in chunk if p.real is not None] or None
        if self.inception is not None:
            self.fake_features.append(_features(self.inception, fakes, self.device))
            if reals is not None:
                self.real_features.append(_features(self.inception, reals, self.device))
        for i, p in enumerate(chunk):
            psnr = miou = None
            size = fakes[i].shape[:2]
            if reals is not None:
                real = self._sized(reals[i], size, p.real, p.fake, resize_rgb)
                psnr = metrics.psnr(fakes[i], real) if real is not None else None
            if self.segmenter is not None and p.label is not None:
                label = check_ids(p.label, read_id_map(p.label), "label", self.label_nc,
                                  "pass label maps of these classes, or --label-nc")  # fmt: skip
                sized = self._sized(label, size, p.label, p.fake, resize_ids)
                if sized is not None:
                    truth = self.mapping[sized]
                    miou = metrics.segmentation_scores(self._count("fake", fakes[i], truth)).miou
                if reals is not None:  # the real photo at the label's size: the reference
                    real = reals[i]
                    if real.shape[:2] != label.shape:
                        real = resize_rgb(real, label.shape[1], label.shape[0])
                    self._count("real", real, self.mapping[label])
            self.per_image.append(ImageScore(p.key, psnr, miou))

    def _sized(
        self,
        image: np.ndarray,
        size: tuple[int, int],
        path: Path | None,
        fake: Path,
        resizer: Callable[[np.ndarray, int, int], np.ndarray],
    ) -> np.ndarray | None:
        """`image` at the synthesized image's (height, width): resized (a run's images, made
        at its training width), or None when the sizes differ, which the paired scores
        (PSNR, mIoU) cannot compare; FID and KID resize every image anyway."""
        if image.shape[:2] == size:
            return image
        if self.resize:
            return resizer(image, size[1], size[0])
        self.unpaired.append(
            f"{path} is {image.shape[1]}x{image.shape[0]} but {fake} is {size[1]}x{size[0]}"
        )
        return None

    def _count(self, kind: str, image: np.ndarray, truth: np.ndarray) -> np.ndarray:
        assert self.segmenter is not None
        matrix = _confusion(self.segmenter, image, truth, self.opts.ignore_index)
        self.confusion[kind] = self.confusion.get(kind, 0) + matrix
        return matrix

    def summary(self) -> Scores:
        """FID, KID, PSNR and segmentation scores, the per-image scores worst first, notes
        (what the scores were computed from is the caller's to add)."""
        fid = kid = None
        notes = []
        opts = self.opts
        if self.inception is not None and self.real_features:
            real, fake = np.concatenate(self.real_features), np.concatenate(self.fake_features)
            if len(fake) < 2:
                notes.append("FID and KID need at least 2 images: skipped")
            else:
                fid = metrics.fid(real, fake)
                mean, std = metrics.kid(
                    real,
                    fake,
                    subsets=opts.kid_subsets,
                    subset_size=opts.kid_subset_size,
                    seed=opts.seed,
                )
                kid = Kid(mean, std, opts.kid_subsets, min(opts.kid_subset_size, len(fake)))
        elif opts.inception is None:
            notes.append(f"FID and KID skipped: {_FETCH}, or pass --inception FILE")
        if self.unpaired:
            notes.append(
                f"PSNR and mIoU skipped for {len(self.unpaired)} pair(s) of two sizes (first: "
                f"{self.unpaired[0]}); pair images of one size to score them"
            )
        psnrs = [v.psnr for v in self.per_image if v.psnr is not None and np.isfinite(v.psnr)]
        segmentation = {
            kind: metrics.segmentation_scores(matrix) for kind, matrix in self.confusion.items()
        }
        if self.segmenter is None:
            notes.append(
                "segmentation accuracy skipped: pass --segmenter FILE (p2phd toy writes "
                "one for toy scenes)"
            )
        worst_first = sorted(
            self.per_image,
            key=lambda v: (
                v.miou if v.miou is not None else 1.0,
                v.psnr if v.psnr is not None else 0.0,
            ),
        )
        return Scores(
            version="",
            context={},
            count=0,
            options={},
            weights={},
            fid=fid,
            kid=kid,
            psnr=float(np.mean(psnrs)) if psnrs else None,
            segmentation=segmentation.get("fake"),
            segmentation_real=segmentation.get("real"),
            notes=notes,
            per_image=worst_first,
        )


def _options(opts: EvalOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()}


def _mapping(label_map: str, names: tuple[str, ...], label_nc: int) -> np.ndarray:
    """`--label-map`'s table; `auto`: the known dataset's own (by the run's class names)."""
    if label_map == "auto":
        known = datasets.by_classes(names)
        label_map = known.name if known is not None else "identity"
    return label_lookup(label_map, label_nc)


def _class_names(mapping: np.ndarray, names: tuple[str, ...], label_nc: int) -> dict[str, str]:
    """Each scored class's name: that of the first label mapped to it (Cityscapes' trainIds
    take their labelIds' names)."""
    out: dict[str, str] = {}
    for label in range(max(label_nc, 1)):
        cls = int(mapping[label])
        if cls != IGNORE:
            out.setdefault(str(cls), class_name(label, names))
    return out


def _features(inception: Any, images: list[np.ndarray], device: torch.device) -> np.ndarray:
    """`[n, 2048]` pool3 features (fp32, kept as float64) of uint8 RGB images, fed in
    [0, 1] as the field feeds them; images of one size go through together."""
    out = []
    for start in range(len(images)):
        if start and images[start].shape == images[start - 1].shape:
            continue
        same = [images[start]]
        for image in images[start + 1 :]:
            if image.shape != images[start].shape:
                break
            same.append(image)
        x = torch.from_numpy(np.stack(same)).permute(0, 3, 1, 2).float().to(device) / 255
        with torch.inference_mode():
            out.append(inception(x).double().cpu().numpy())
    return np.concatenate(out)


def _confusion(
    segmenter: Segmenter, image: np.ndarray, truth: np.ndarray, ignore: int
) -> np.ndarray:
    pred = segmenter(torch.from_numpy(image).permute(2, 0, 1)[None])[0].cpu().numpy()
    classes = segmenter.num_classes
    valid = truth[truth != ignore]
    if valid.size and valid.max() >= classes:
        raise ConfigError(
            f"--segmenter: predicts {classes} classes but the labels reach "
            f"{int(valid.max())} after the label map; pass the segmenter for these "
            "labels, or --label-map"
        )
    return metrics.confusion(truth, pred, classes, ignore)
