"""The vocabulary of the losses: one type for the terms of a step, read by the trainer, the
log, the progress bar, the samples page and inspect. Standard library only, so the command
line can use it without importing torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from p2phd.config import LossConfig


class _Number(Protocol):
    def __add__(self, other: Any, /) -> Any: ...
    def __rmul__(self, other: float, /) -> Any: ...


T = TypeVar("T", bound=_Number)  # a 0-d tensor in the step, a float in the log


class LossTerms(NamedTuple, Generic[T]):
    """The terms of one step, weights applied: tensors from the step, floats in the log. The
    trainer, the log, the progress bar, the samples page and inspect all read this type; a
    new loss is a field here, its line in `TERM_LABELS`, and its computation in the step."""

    g_gan: T  # G's adversarial loss, summed over D's scales
    g_feat: T  # discriminator feature matching, x lambda_feat
    g_vgg: T  # VGG19 perceptual loss, x lambda_feat
    d_real: T  # D's loss on the real images
    d_fake: T  # D's loss on the fakes

    def g_total(self) -> T:
        """What G (and E) minimise."""
        return self.g_gan + self.g_feat + self.g_vgg

    def d_total(self) -> T:
        """What D minimises: the reference's 0.5 (real + fake)."""
        return 0.5 * (self.d_real + self.d_fake)

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> LossTerms[float] | None:
        """The terms of a log.jsonl record, or None when it lacks one."""
        values = [record.get(name) for name in cls._fields]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return None
        return LossTerms[float](*(float(v) for v in values))  # type: ignore[arg-type]


TERM_LABELS = {"g_gan": "gan", "g_feat": "feat", "g_vgg": "vgg", "d_real": "real", "d_fake": "fake"}


def active_terms(loss: LossConfig) -> tuple[str, ...]:
    """The terms a run computes: feature matching and VGG can be off (then they stay 0)."""
    on = {"g_feat": loss.ganfeat_loss, "g_vgg": loss.vgg_loss}
    return tuple(name for name in LossTerms._fields if on.get(name, True))
