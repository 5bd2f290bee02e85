"""The field's image-synthesis scores, computed as the field computes them.

FID (Heusel et al. 2017, as pytorch-fid 0.3): |mu1 - mu2|^2 + Tr(S1) + Tr(S2)
- 2 Tr((S1 S2)^(1/2)) over 2048-d Inception pool3 features, in float64, covariances with n - 1.
KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel (x.y / d + 1)^3, mean and
standard deviation over random subsets. Segmentation accuracy (pix2pixHD's Table 1): pixel
accuracy, mean class accuracy and mIoU from one confusion matrix. PSNR of paired images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[d]` and covariance `[d, d]` (n - 1 normalisation) of `[n, d]` features."""
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        raise ValueError("FID needs at least 2 images per set")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix; rounding's
    tiny negative eigenvalues are clipped to 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """FID from two Gaussians. Tr((S1 S2)^(1/2)) is the sum of the square roots of the
    eigenvalues of A S2 A with A = S1^(1/2): that matrix is symmetric positive semi-definite,
    so a symmetric eigendecomposition (no complex sqrtm, no 1e-6 * I fix-up, no imaginary
    part to drop) stays exact and stable even when S1 or S2 is singular, as it is whenever
    there are fewer images than dimensions."""
    a = _sqrt_psd(s1)
    middle = np.linalg.eigvalsh(a @ s2 @ a)
    trace_sqrt = float(np.sqrt(np.clip(middle, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two `[n, d]` feature sets."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


def kid(real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(mean, std) of the unbiased MMD^2 with the cubic polynomial kernel over `subsets`
    random subsets of min(subset_size, n) images of each set, drawn without replacement."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int, ignore: int = 255
              ) -> np.ndarray:  # fmt: skip
    """`[classes, classes]` counts of (true class, predicted class) over the pixels whose
    true class is not `ignore`; one bincount, whatever the number of classes."""
    t, p = truth.reshape(-1).astype(np.int64), pred.reshape(-1).astype(np.int64)
    keep = t != ignore
    if keep.any() and (t[keep].max() >= classes or t[keep].min() < 0):
        raise ValueError(f"label {t[keep].max()} is outside the segmenter's {classes} classes")
    return np.bincount(t[keep] * classes + p[keep], minlength=classes * classes).reshape(
        classes, classes
    )


@dataclass(frozen=True)
class SegmentationScores:
    pixel_accuracy: float
    mean_accuracy: float  # over the classes present in the labels
    miou: float  # over the classes present in the labels or the predictions
    iou: dict[int, float]  # class -> IoU, for those classes

    def to_dict(self) -> dict[str, object]:
        return {"pixel_accuracy": self.pixel_accuracy, "mean_accuracy": self.mean_accuracy,
                "miou": self.miou, "iou": {str(k): v for k, v in self.iou.items()}}  # fmt: skip


def segmentation_scores(matrix: np.ndarray) -> SegmentationScores:
    """Pixel accuracy, mean accuracy and mIoU of a confusion matrix (rows: truth)."""
    m = np.asarray(matrix, np.float64)
    hits, truth, predicted = np.diag(m), m.sum(1), m.sum(0)
    union = truth + predicted - hits
    seen, counted = truth > 0, union > 0
    iou = {int(c): float(hits[c] / union[c]) for c in np.flatnonzero(counted)}
    return SegmentationScores(
        pixel_accuracy=float(hits.sum() / max(m.sum(), 1)),
        mean_accuracy=float((hits[seen] / truth[seen]).mean()) if seen.any() else 0.0,
        miou=float(np.mean(list(iou.values()))) if iou else 0.0,
        iou=iou,
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one size (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))
