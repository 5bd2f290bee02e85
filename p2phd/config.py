"""The one typed, frozen configuration of a training run, and of dataset preparation.

Defaults live here and nowhere else: the CLI passes on only the options a user gave.
Names follow NVIDIA/pix2pixHD in snake_case (`label_nc`, `ngf`, `num_d`, `lambda_feat`) with
positive booleans (`instance` rather than `no_instance`).

A `TrainConfig` is saved as JSON beside every checkpoint. Its sections split in two: `net`,
`loss`, `data` and `optim` decide what is being trained and must not change when a run
resumes; `run` says how this invocation runs (device, cadence, where the data lives) and may.

This module imports only the standard library, so `--help` and config tests stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from p2phd import limits
from p2phd.errors import ConfigError
from p2phd.jsonfile import SchemaError, decode, parse
from p2phd.limits import MAX_LABEL_NC, check_range, check_seed, check_side

M = TypeVar("M")  # a label or instance map: numpy array or tensor

SCHEMA_VERSION = 2  # 2: the VGG path is a run option, its hash a loss fact; no beta2

Stage = Literal["global", "local", "joint"]
GanMode = Literal["lsgan", "bce", "hinge"]
Norm = Literal["instance", "batch"]
Precision = Literal["auto", "fp32", "bf16"]


def _require(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{option}: {message}")


def _check_choices(obj: Any) -> None:
    """Literal-typed fields hold one of their choices (the CLI passes plain strings)."""
    for name, hint in typing.get_type_hints(type(obj)).items():
        if typing.get_origin(hint) is Literal and getattr(obj, name) not in typing.get_args(hint):
            choices = " | ".join(typing.get_args(hint))
            _require(
                False,
                f"--{name.replace('_', '-')}",
                f"{getattr(obj, name)!r} is not one of {choices}",
            )


FieldScaleKind = Literal["linear", "log", "asinh"]
BestMetric = Literal["auto", "miou", "fid", "psnr", "cc"]
EvalSplit = Literal["test", "val"]  # never train: a score on what G fits does not pick BEST


# NetConfig's shape fields: (name, lowest, highest), the highest from p2phd.limits
_SHAPE_LIMITS = (
    ("ngf", 1, limits.MAX_WIDTH),
    ("ndf", 1, limits.MAX_WIDTH),
    ("nef", 1, limits.MAX_WIDTH),
    ("feat_num", 1, limits.MAX_CHANNELS),
    ("n_downsample_global", 1, limits.MAX_DOWNSAMPLE),
    ("n_downsample_e", 1, limits.MAX_DOWNSAMPLE),
    ("n_blocks_global", 0, limits.MAX_BLOCKS),
    ("n_blocks_local", 0, limits.MAX_BLOCKS),
    ("n_local_enhancers", 0, limits.MAX_LOCAL_ENHANCERS),
    ("num_d", 1, limits.MAX_NUM_D),
    ("n_layers_d", 1, limits.MAX_LAYERS_D),
    ("input_nc", 1, limits.MAX_CHANNELS),
    ("output_nc", 1, limits.MAX_CHANNELS),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldScale:
    """How one side of a measured-field dataset maps physical values to [-1, 1] (data/fields.py):
    linear between the saturation limits `low` and `high` (clipped outside them), after a
    log10 or an asinh where `scale` says."""

    channels: int
    low: float
    high: float
    scale: FieldScaleKind = "linear"
    units: str = ""  # shown on colour bars and pages ("G", "HU"); "" unknown

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(self.channels >= 1, "--input-nc", "must be >= 1")
        _require(
            math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high,
            "--in-range",
            f"{self.low},{self.high} is not a range MIN,MAX of finite numbers, MIN < MAX",
        )
        _require(
            self.scale != "log" or self.low > 0,
            "--in-scale",
            f"log needs a range above 0, not {self.low},{self.high}",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldRange:
    """Saturation limits as prep's --in-range/--out-range declare them: physical values
    `MIN,MAX`, or percentiles of the data `pLOW,pHIGH` (p1,p99) that prep measures."""

    low: float
    high: float
    percent: bool = False

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high,
            "--in-range",
            f"{self.low:g},{self.high:g} is not a range MIN,MAX of finite numbers, MIN < MAX",
        )
        _require(
            not self.percent or (0 <= self.low and self.high <= 100),
            "--in-range",
            f"percentiles p{self.low:g},p{self.high:g} lie outside 0..100",
        )

    @classmethod
    def parse(cls, text: str, option: str) -> FieldRange:
        """`MIN,MAX` or `pLOW,pHIGH`, refused in one line naming `option`."""
        parts = [p.strip() for p in text.split(",")]
        percent = len(parts) == 2 and all(p[:1].lower() == "p" for p in parts)
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = (float(p[1:] if percent else p) for p in parts)
            return cls(low=low, high=high, percent=percent)
        except (ValueError, ConfigError):
            raise ConfigError(
                f"{option} {text}: give MIN,MAX in physical units (-3000,3000) or "
                "percentiles of the data (p1,p99), MIN < MAX"
            ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldSpec:
    """A measured-field dataset's two sides, and the value that replaced NaN and inf."""

    input: FieldScale
    output: FieldScale
    fill: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NetConfig:
    """Architecture of G, D and E (docs/design.md §4); the CLI's --label-nc, --ngf, --num-d ..."""

    label_nc: int = 35  # semantic classes; 0 means the input is an RGB image (input_nc channels)
    input_nc: int = 3  # channels of the input image when label_nc == 0
    output_nc: int = 3
    instance: bool = True  # add the instance-boundary map (paper §3.3)
    ngf: int = 64  # the outermost generator's width: G1's alone, or the finest enhancer's
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 0  # 0: G1 alone; 1 for 2048x1024, 2 for 4096x2048
    n_blocks_local: int = 3
    norm: Norm = "instance"
    instance_feat: bool = False  # E's features, averaged per instance, enter G (paper §3.4)
    label_feat: bool = False  # the same, averaged per class instead
    feat_num: int = 3
    nef: int = 16
    n_downsample_e: int = 4
    class_divisor: int = 1000  # instance id i >= this belongs to class i // this (Cityscapes)
    num_d: int = 2
    n_layers_d: int = 3
    ndf: int = 64
    class_names: tuple[str, ...] = ()  # the label_nc classes' names (from the data); () unknown
    fields: FieldSpec | None = None  # measured fields: how each side maps to [-1, 1]

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(
            len(self.class_names) in (0, self.label_nc),
            "--label-nc",
            f"{self.label_nc} classes but {len(self.class_names)} class names",
        )
        _require(self.label_nc >= 0, "--label-nc", "must be >= 0 (0 means RGB input images)")
        check_range(self.label_nc, "--label-nc", 0, MAX_LABEL_NC)
        for name in ("input_nc", "output_nc"):  # photos are RGB or grey; fields any count
            allowed = getattr(self, name) >= 1 if self.fields else getattr(self, name) in (1, 3)
            _require(allowed, f"--{name.replace('_', '-')}", "is 1 or 3 for photos")
        if self.fields is not None:
            _require(
                (self.fields.input.channels, self.fields.output.channels)
                == (self.input_nc, self.output_nc),
                "--input-nc",
                f"the data's fields have {self.fields.input.channels} input and "
                f"{self.fields.output.channels} output channels; leave --input-nc and "
                "--output-nc out",
            )
            _require(self.label_nc == 0, "--label-nc", "measured fields take --label-nc 0")
        _require(
            not (self.label_nc == 0 and self.instance),
            "--instance",
            "RGB input (label_nc 0) has no instance maps; pass --no-instance",
        )
        for name, low, high in _SHAPE_LIMITS:  # a net far past any real one never builds
            check_range(getattr(self, name), f"--{name.replace('_', '-')}", low, high)
        _require(
            not (self.instance_feat and self.label_feat),
            "--instance-feat",
            "pick one of --instance-feat and --label-feat",
        )
        _require(
            not self.instance_feat or self.instance,
            "--instance-feat",
            "pools features per instance and so needs instance maps; use --label-feat instead",
        )
        _require(
            not self.label_feat or self.label_nc > 0,
            "--label-feat",
            "pools features per class and so needs label maps (label_nc > 0)",
        )
        _require(self.class_divisor >= 1, "--class-divisor", "must be >= 1")

    @property
    def label_channels(self) -> int:
        """Channels of the encoded label: one-hot classes (or the RGB input) + boundary map."""
        return (self.label_nc or self.input_nc) + int(self.instance)

    @property
    def use_features(self) -> bool:
        """Whether the encoder E exists and its feature maps are part of G's input."""
        return self.instance_feat or self.label_feat

    @property
    def style_pool(self) -> Literal["instance", "label"] | None:
        """The regions E's features are averaged over and styles are picked for (paper §3.4):
        every instance (--instance-feat) or every class (--label-feat); None without E."""
        if self.instance_feat:
            return "instance"
        return "label" if self.label_feat else None

    def pool_map(self, label_map: M, instance_map: M | None) -> M:
        """The map whose regions carry the styles: the instance map or the label map, as
        `style_pool` says (the one home of that rule for training, encoding and synthesis)."""
        if self.style_pool == "instance":
            if instance_map is None:
                raise ValueError("--instance-feat pools over instances: an instance map is needed")
            return instance_map
        return label_map

    @property
    def generator_in_channels(self) -> int:
        """Encoded label, then (with features) the feature maps: 36 or 39 for Cityscapes."""
        return self.label_channels + (self.feat_num if self.use_features else 0)

    @property
    def discriminator_in_channels(self) -> int:
        """D sees the encoded label and an image, never the instance features."""
        return self.label_channels + self.output_nc

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this for G (and E) to keep the size."""
        g = 2 ** (self.n_downsample_global + self.n_local_enhancers)
        return max(g, 2**self.n_downsample_e) if self.use_features else g

    @property
    def min_side(self) -> int:
        """The smallest height and width G (and E) take: two pixels at the bottleneck."""
        return 2 * self.size_multiple


@dataclass(frozen=True, kw_only=True, slots=True)
class LossConfig:
    """Loss terms and weights: the reference's LSGAN, feature matching and VGG loss at 10."""

    gan_mode: GanMode = "lsgan"
    lambda_feat: float = 10.0  # weight of feature matching and of the VGG loss
    ganfeat_loss: bool = True  # discriminator feature matching
    vgg_loss: bool = True
    vgg_sha256: str | None = None  # the VGG19 weights by content: the file may move, not change

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(self.lambda_feat >= 0, "--lambda-feat", "must be >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    """How training samples are made from the prepped dataset."""

    load_width: int | None = None  # resize to this width on load; None keeps the prepped size
    crop_size: int | None = None  # random square crop after the resize; None: no crop
    flip: bool = True  # random horizontal flip (off by default for measured fields)
    rotate: float = 0.0  # measured fields: a random rotation within +-rotate degrees

    def __post_init__(self) -> None:
        _require(0 <= self.rotate <= 180, "--rotate", "is an angle in degrees, 0..180")
        check_side(self.load_width, "--load-width", low=8)
        check_side(self.crop_size, "--crop-size", low=8)


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimConfig:
    """Adam and the learning-rate schedule: constant for `epochs`, then linear decay to 0."""

    lr: float = 2e-4
    beta1: float = 0.5
    epochs: int = 100  # the reference's niter
    decay_epochs: int = 100  # the reference's niter_decay
    batch_size: int = 1  # per process: under torchrun the global batch is this x processes
    seed: int = 0
    fix_global_epochs: int = 10  # local stage: epochs with G1 frozen (the reference's
    #                              niter_fix_global); train-joint continues from there
    ema_beta: float = 0.999  # a moving average of G's (and E's) weights; 0: none
    ema_start: int = 500  # steps in which the average copies the weights, before it averages

    def __post_init__(self) -> None:
        _require(self.lr > 0, "--lr", "must be > 0")
        _require(self.fix_global_epochs >= 1, "--fix-global-epochs", "must be >= 1")
        _require(0 <= self.ema_beta < 1, "--ema-beta", "must lie in [0, 1) (0: no average)")
        _require(self.ema_start >= 0, "--ema-start", "must be >= 0")
        _require(0 <= self.beta1 < 1, "--beta1", "must lie in [0, 1)")
        _require(self.epochs >= 0 and self.decay_epochs >= 0, "--epochs", "must be >= 0")
        _require(self.epochs + self.decay_epochs >= 1, "--epochs", "need at least one epoch")
        _require(self.batch_size >= 1, "--batch-size", "must be >= 1")
        check_seed(self.seed)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.decay_epochs

    def lr_at(self, epoch: int) -> float:
        """Learning rate of zero-based `epoch`, equal to the reference's per-epoch decrement.

        The reference subtracts lr/decay_epochs at the end of every epoch after `epochs`, so
        epoch `epochs + k` (zero-based) runs at lr * (1 - k / decay_epochs).
        """
        if self.decay_epochs == 0:
            return self.lr
        decayed = max(0, epoch - self.epochs)
        return self.lr * max(0.0, 1.0 - decayed / self.decay_epochs)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunOptions:
    """How this invocation runs; may differ between a run and its resumption."""

    data_root: str = ""
    vgg_weights: str | None = None  # where the VGG19 weights are now (.pth or .safetensors)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    channels_last: bool = False
    activation_checkpointing: bool = False  # recompute activations in backward: less memory
    max_steps: int | None = None  # stop after this many steps in total (short runs, tests)
    num_workers: int = 2
    log_every: int = 50
    sample_every: int = 500
    save_every: int = 1000
    keep_last: int = 3
    keep_every: int = 0  # also keep the last checkpoint of every Nth epoch; 0: none
    max_nonfinite: int = 10  # stop after this many non-finite steps in a row
    eval_every: int = 0  # score a held-out split every N epochs (training/scoring.py); 0: never
    eval_split: EvalSplit = "test"  # the prepped split scored: test, or val (prep --val-fraction)
    best_metric: BestMetric = "auto"  # what BEST follows; auto: miou, fid, psnr (fields: cc)
    segmenter: str | None = None  # for mIoU during training
    inception: str | None = None  # for FID and KID during training
    tensorboard: bool = False  # also write TensorBoard event files (training/board.py)

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(self.eval_every >= 0, "--eval-every", "must be >= 0 (0: never)")
        _require(self.max_steps is None or self.max_steps >= 1, "--max-steps", "must be >= 1")
        for name in ("log_every", "sample_every", "save_every", "keep_last", "max_nonfinite"):
            _require(getattr(self, name) >= 1, f"--{name.replace('_', '-')}", "must be >= 1")
        check_range(self.num_workers, "--num-workers", 0, limits.MAX_WORKERS)
        _require(self.keep_every >= 0, "--keep-every", "must be >= 0 (0: no milestones)")
        _require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "--device",
            f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig:
    """Everything a training stage needs; saved as config.json in the run and its checkpoints."""

    stage: Stage = "global"
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(
            self.stage != "local" or self.optim.fix_global_epochs <= self.optim.total_epochs,
            "--fix-global-epochs",
            f"{self.optim.fix_global_epochs} is more than the {self.optim.total_epochs} epochs "
            "of the schedule (--epochs + --decay-epochs)",
        )
        _require(
            self.stage == "global" or self.net.n_local_enhancers >= 1,
            "--n-local-enhancers",
            "the local and joint stages need at least 1",
        )
        if self.data.crop_size is not None:
            multiple = self.net.size_multiple
            _require(
                self.data.crop_size % multiple == 0,
                "--crop-size",
                f"{self.data.crop_size} is not a multiple of {multiple} (2^downsamplings of G, "
                "and of E with features); "
                f"use {max(multiple, self.data.crop_size // multiple * multiple)}",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected an object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version == 1:  # p2phd 0.1.0: the VGG path was a loss field; two fixed settings
            loss, run = dict(data.get("loss", {})), dict(data.get("run", {}))
            optim = dict(data.get("optim", {}))
            run["vgg_weights"] = loss.pop("vgg_weights", None)
            for section, key, fixed in (
                (loss, "vgg_imagenet_norm", False),
                (optim, "beta2", 0.999),
            ):
                if section.pop(key, fixed) != fixed:
                    raise ConfigError(f"config: {key} {fixed!r} is the only value p2phd has")
            data = {**data, "loss": loss, "run": run, "optim": optim}
        elif version != SCHEMA_VERSION:
            raise ConfigError(
                f"config schema_version {version} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            return decode(cls, data, "config")
        except SchemaError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            return cls.from_dict(parse(text))
        except SchemaError as exc:
            raise ConfigError(str(exc)) from None

    def fixed_part(self) -> dict[str, Any]:
        """The sections that must be equal for a run to resume: all but `run`."""
        full = dataclasses.asdict(self)
        del full["run"]
        return full


@dataclass(frozen=True, kw_only=True, slots=True)
class PrepConfig:
    """Options of `p2phd prep`."""

    width: int | None = None  # resize so the width is this; None keeps the source width
    multiple: int = 32  # height and width are rounded to multiples of this (2^(n_down + n_local))
    label_nc: int | None = None  # None: the known dataset's, or inferred as max label + 1
    class_names: tuple[str, ...] = ()  # one per class (--class-names FILE); () when unknown
    skip_bad: bool = False
    workers: int = 0  # processes; 0: one per CPU core (in this process for a few items)
    overwrite: bool = False
    layout: str = "auto"  # auto, reference, or a known dataset's (checked in data/sources.py)
    coco_instances: tuple[str, ...] = ()  # COCO instance annotation files (data/coco.py)
    field: bool = False  # the *_A/*_B files are measured fields (.npy, FITS, float TIFF: auto)
    in_range: FieldRange | None = None  # saturation limits; None: the data's min, max
    out_range: FieldRange | None = None
    in_scale: FieldScaleKind = "linear"
    out_scale: FieldScaleKind = "linear"
    in_units: str = ""
    out_units: str = ""
    fill: float | None = None  # replaces NaN and inf; None: they are refused
    input_nc: int | None = None  # the fields' channels, checked when given
    output_nc: int | None = None
    palette: Any = None  # a p2phd.data.palette.Palette: colour-coded label maps' colour -> id
    val_fraction: float = 0.0  # hold out this fraction of train as a `val` split

    def __post_init__(self) -> None:
        _check_choices(self)
        _require(0 <= self.val_fraction < 1, "--val-fraction", "must lie in [0, 1)")
        _require(self.width is None or self.width >= self.multiple, "--width", "is too small")
        check_side(self.width, "--width")
        _require(self.multiple >= 1, "--multiple", "must be >= 1")
        _require(self.label_nc is None or self.label_nc >= 0, "--label-nc", "must be >= 0")
        if self.label_nc is not None:
            check_range(self.label_nc, "--label-nc", 0, MAX_LABEL_NC)
        check_range(self.workers, "--workers", 0, limits.MAX_WORKERS)  # 0: one per core


def resume_conflicts(stored: TrainConfig, new: TrainConfig) -> list[str]:
    """What `new` changes in what `stored` trains (all but the run options and the stage),
    as `net.ngf: 8 != 4` lines. The schedule may grow (more epochs or decay epochs), and a
    run from before VGG hashes were recorded takes the hash it is given."""
    old, now = stored.fixed_part(), new.fixed_part()
    now["stage"] = old["stage"]  # the stages' order is checked where runs resume
    for key in ("epochs", "decay_epochs"):
        if now["optim"][key] >= old["optim"][key]:
            now["optim"][key] = old["optim"][key]
    if old["loss"]["vgg_sha256"] is None or not now["loss"]["vgg_loss"]:
        now["loss"]["vgg_sha256"] = old["loss"]["vgg_sha256"]
    return diff(old, now)


def schedule_growth(stored: TrainConfig, new: TrainConfig) -> dict[str, int]:
    """The schedule fields `new` extends, with their new values (empty when none)."""
    return {
        key: getattr(new.optim, key)
        for key in ("epochs", "decay_epochs")
        if getattr(new.optim, key) > getattr(stored.optim, key)
    }


def diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Readable differences between two nested config dicts, e.g. `net.ngf: 64 != 32`."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff(va, vb, f"{name}.")
        elif va != vb:
            out.append(f"{name}: {va!r} != {vb!r}")
    return out
