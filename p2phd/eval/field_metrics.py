"""The scores the measured-field papers report, in physical units: MAE, RMSE and Pearson's
correlation coefficient over pixels (per image, and pooled over every pixel of the split
from running sums, so nothing holds the split), PSNR over the declared range, and SSIM
(Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, as
scikit-image's `structural_similarity(gaussian_weights=True)` computes it). `bin_mean`
gives the coarse grid the solar papers also compare on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def bin_mean(values: np.ndarray, n: int) -> np.ndarray:
    """`[C, H, W]` averaged over `n` x `n` blocks (a ragged edge is left out)."""
    c, h, w = values.shape
    h2, w2 = h // n, w // n
    cut = values[:, : h2 * n, : w2 * n]
    return cut.reshape(c, h2, n, w2, n).mean(axis=(2, 4))


@dataclass
class Sums:
    """Running sums of a set of (fake, real) values: enough for MAE, RMSE and CC."""

    n: int = 0
    f: float = 0.0
    r: float = 0.0
    ff: float = 0.0
    rr: float = 0.0
    fr: float = 0.0
    abs_err: float = 0.0

    def add(self, fake: np.ndarray, real: np.ndarray) -> Sums:
        f, r = fake.astype(np.float64).ravel(), real.astype(np.float64).ravel()
        self.n += f.size
        self.f += float(f.sum())
        self.r += float(r.sum())
        self.ff += float(f @ f)
        self.rr += float(r @ r)
        self.fr += float(f @ r)
        self.abs_err += float(np.abs(f - r).sum())
        return self

    def scores(self) -> dict[str, float | None]:
        """{"mae", "rmse", "cc"} (cc None where a side is constant)."""
        n = max(self.n, 1)
        mse = max((self.ff - 2 * self.fr + self.rr) / n, 0.0)
        cov = self.fr / n - (self.f / n) * (self.r / n)
        var_f = self.ff / n - (self.f / n) ** 2
        var_r = self.rr / n - (self.r / n) ** 2
        cc = cov / math.sqrt(var_f * var_r) if var_f > 0 and var_r > 0 else None
        return {"mae": self.abs_err / n, "rmse": math.sqrt(mse), "cc": cc}


def pearson(fake: np.ndarray, real: np.ndarray) -> float | None:
    """Pearson's correlation coefficient over the pixels (centred first: exact for fields
    far from 0, where running sums would cancel)."""
    f = fake.astype(np.float64).ravel() - fake.mean()
    r = real.astype(np.float64).ravel() - real.mean()
    denominator = math.sqrt(float(f @ f) * float(r @ r))
    return float(f @ r) / denominator if denominator > 0 else None


def psnr(fake: np.ndarray, real: np.ndarray, data_range: float) -> float:
    """20 log10(range / RMSE) dB over the declared range (inf for identical fields)."""
    mse = float(np.mean((fake.astype(np.float64) - real.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(fake: np.ndarray, real: np.ndarray, data_range: float) -> float:
    """Mean SSIM of `[C, H, W]` fields (each channel, then their mean), over the pixels a
    whole window covers, as scikit-image crops its border."""
    sigma, radius = 1.5, 5
    x = torch.from_numpy(np.ascontiguousarray(fake, dtype=np.float64))[:, None]
    y = torch.from_numpy(np.ascontiguousarray(real, dtype=np.float64))[:, None]
    if min(x.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"SSIM needs fields of at least {2 * radius + 1}x{2 * radius + 1}")
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()

    def blur(z: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())
