"""What an evaluation found, typed: the page, the CLI and eval.json read these fields, so a
misspelt score is an error, not a silent None. `Scores.to_dict` is eval.json's layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p2phd.eval.metrics import SegmentationScores


@dataclass(frozen=True, slots=True)
class Kid:
    """KID: the unbiased MMD² over `subsets` random subsets of `subset_size` images."""

    mean: float
    std: float
    subsets: int
    subset_size: int


@dataclass(frozen=True, slots=True)
class ImageScore:
    """The paired scores of one synthesized image (each when it could be computed)."""

    key: str
    psnr: float | None = None
    miou: float | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {"psnr": self.psnr, "miou": self.miou}
        return {"key": self.key, **{k: v for k, v in found.items() if v is not None}}


@dataclass(frozen=True, slots=True)
class Scores:
    """Every number of one evaluation, with what it was computed from."""

    version: str
    context: dict[str, Any]  # the run, data, split and width; or the two folders
    count: int
    options: dict[str, Any]
    weights: dict[str, str]  # file -> SHA-256 of the Inception and segmenter weights
    fid: float | None = None
    kid: Kid | None = None
    psnr: float | None = None  # mean over the pairs with a finite PSNR
    segmentation: SegmentationScores | None = None  # on the synthesized images
    segmentation_real: SegmentationScores | None = None  # on the real photos: the reference
    segmenter_classes: int | None = None
    class_names: dict[str, str] = field(default_factory=dict)  # scored class -> its name
    notes: list[str] = field(default_factory=list)
    per_image: list[ImageScore] = field(default_factory=list)  # the worst first

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "p2phd_version": self.version,
            **self.context,
            "count": self.count,
            "options": self.options,
            "weights": self.weights,
            "class_names": self.class_names,
            "notes": self.notes,
            "per_image": [p.to_dict() for p in self.per_image],
        }
        if self.fid is not None:
            out["fid"] = self.fid
        if self.kid is not None:
            kid = self.kid
            out["kid"] = {
                "mean": kid.mean,
                "std": kid.std,
                "subsets": kid.subsets,
                "subset_size": kid.subset_size,
            }
        if self.psnr is not None:
            out["psnr"] = self.psnr
        for name, seg in (
            ("segmentation", self.segmentation),
            ("segmentation_real", self.segmentation_real),
        ):
            if seg is not None:
                out[name] = seg.to_dict()
        if self.segmenter_classes is not None:
            out["segmenter_classes"] = self.segmenter_classes
        return out
