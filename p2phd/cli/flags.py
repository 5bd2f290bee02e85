"""The training options, written once: one line per config field a user may set.

Each line names the field, its help, and the commands that accept it (G train-global,
L train-local, J train-joint, I import-reference). The type and the default come from the
config dataclass, so the options and the config cannot drift apart; typer options default to
None, meaning "not given", and only given options reach the core.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from p2phd.config import DataConfig, LossConfig, NetConfig, OptimConfig, RunOptions


@dataclass(frozen=True)
class Flag:
    field: str
    help: str
    commands: str = "GL"  # G train-global, L train-local, J train-joint, I import-reference
    spelled: str | None = None  # the option's name, when not --field-name
    show_default: bool = True  # False where the default depends on the stage or the data
    import_help: str | None = None  # import-reference's, where "the data's" would not apply


SECTIONS = {
    "net": NetConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "run": RunOptions,
}
FLAGS: dict[str, list[Flag]] = {
    "net": [
        Flag(
            "label_nc",
            "Classes; 0: RGB inputs (default: the data's).",
            "GLI",
            "--label-nc",
            False,
            "Classes; 0: RGB inputs (the reference's --label_nc). [35]",
        ),
        Flag("input_nc", "Channels of RGB input images (with --label-nc 0).", "GLI"),
        Flag("output_nc", "Channels of the output images (1: grey).", "GLI"),
        Flag(
            "instance",
            "Boundary map input (default: if the data has instances).",
            "GLI",
            None,
            False,
            "Boundary map input (--no-instance: the reference's --no_instance). [true]",
        ),
        Flag("ngf", "Generator width (G1: 64; local: G1's / 2^enhancers).", "GLI", None, False),
        Flag("n_downsample_global", "G1 downsamplings.", "GLI"),
        Flag("n_blocks_global", "G1 residual blocks.", "GLI"),
        Flag("n_local_enhancers", "Enhancers: 1 for 2048x1024, 2 for 4096x2048.", "LI"),
        Flag("n_blocks_local", "Residual blocks per enhancer.", "LI"),
        Flag("norm", "instance | batch.", "GLI"),
        Flag("instance_feat", "Per-instance features from the encoder E.", "GLI"),
        Flag("label_feat", "Per-class features from the encoder E.", "GLI"),
        Flag("feat_num", "Feature channels.", "GLI"),
        Flag("nef", "Encoder width.", "GLI"),
        Flag("n_downsample_e", "Encoder downsamplings.", "GLI", "--n-downsample-e"),
        Flag("class_divisor", "Instance id i >= N belongs to class i // N.", "GLI"),
        Flag("num_d", "Discriminator scales (global 2, local 3).", "GLI", "--num-d", False),
        Flag("n_layers_d", "Layers per discriminator scale.", "GLI", "--n-layers-d"),
        Flag("ndf", "Discriminator width.", "GLI"),
    ],
    "loss": [
        Flag("gan_mode", "lsgan | bce | hinge."),
        Flag("lambda_feat", "Weight of feature matching and of the VGG loss."),
        Flag("ganfeat_loss", "Discriminator feature matching.", "GLI", "--ganfeat-loss"),
        Flag(
            "vgg_loss", "VGG19 perceptual loss (default: on; off for fields).", "GLI", None, False
        ),
    ],
    "data": [
        Flag("load_width", "Resize the training images to this width."),
        Flag("crop_size", "Random square crop."),
        Flag(
            "flip", "Random horizontal flip (default off for measured fields).", "GL", None, False
        ),
        Flag("rotate", "Measured fields: random rotation within +-DEG degrees."),
    ],
    "optim": [
        Flag("lr", "Adam learning rate."),
        Flag("beta1", "Adam beta1."),
        Flag("epochs", "Epochs at constant lr (a resumed run may extend it).", "GLJ"),
        Flag("decay_epochs", "Epochs of linear decay to 0 (may be extended).", "GLJ"),
        Flag("batch_size", "Images per step and process."),
        Flag("seed", "Seed of the weights, the order and the augmentation."),
        Flag("fix_global_epochs", "Epochs with G1 frozen before train-joint.", "L"),
        Flag("ema_beta", "Moving average of G's (and E's) weights, per step (0: none)."),
        Flag("ema_start", "Steps the average copies the weights before it averages."),
    ],
    "run": [
        Flag(
            "vgg_weights",
            "VGG19 .pth or .safetensors (default: p2phd weights fetch vgg19's).",
            "GLJI",
        ),
        Flag("device", "auto | cpu | cuda | cuda:N.", "GLJ"),
        Flag("precision", "auto (bf16 on CUDA) | fp32 | bf16.", "GLJ"),
        Flag("compile", "torch.compile the nets.", "GLJ"),
        Flag("channels_last", "channels_last memory format.", "GLJ"),
        Flag("activation_checkpointing", "Recompute activations: less memory, more time.", "GLJ"),
        Flag("max_steps", "Stop after this many steps in total (this invocation).", "GLJ"),
        Flag("num_workers", "Data loader processes.", "GLJ"),
        Flag("log_every", "Steps between log lines.", "GLJ"),
        Flag("sample_every", "Steps between sample grids.", "GLJ"),
        Flag("save_every", "Steps between checkpoints.", "GLJ"),
        Flag("keep_last", "Checkpoints kept.", "GLJ"),
        Flag("keep_every", "Also keep each Nth epoch's last checkpoint (0: none).", "GLJ"),
        Flag("max_nonfinite", "Stop after this many non-finite steps in a row.", "GLJ"),
        Flag("eval_every", "Score --eval-split every N epochs (0: never); BEST follows.", "GLJ"),
        Flag("eval_split", "The prepped split scored: test, or val (prep --val-fraction).", "GLJ"),
        Flag("best_metric", "auto | miou | fid | psnr | cc: what BEST follows.", "GLJ"),
        Flag("segmenter", "A segmenter (.pt/.pt2) for mIoU during training.", "GLJ"),
        Flag("inception", "pytorch-fid's Inception, for FID during training.", "GLJ"),
        Flag("tensorboard", "Also write TensorBoard events (p2phd[tensorboard]).", "GLJ"),
    ],
}
# Config fields that are not options: the DATA argument, and facts read from the data and
# from the VGG weights file.
NOT_OPTIONS = {"run": {"data_root"}, "net": {"class_names", "fields"}, "loss": {"vgg_sha256"}}


def flags_for(command: str) -> list[tuple[str, Flag]]:
    """(section, flag) of every option `command` (a letter of Flag.commands) accepts."""
    return [(s, f) for s, flags in FLAGS.items() for f in flags if command in f.commands]


def option_parameters(command: str) -> list[inspect.Parameter]:
    """Keyword-only typer parameters for the options of `command`, all defaulting to None."""
    params = []
    for section, flag in flags_for(command):
        cls = SECTIONS[section]
        hint = typing.get_type_hints(cls)[flag.field]
        field = next(f for f in dataclasses.fields(cls) if f.name == flag.field)
        base = _plain_type(hint)
        name = flag.spelled or "--" + flag.field.replace("_", "-")
        decl = f"{name}/--no-{name[2:]}" if base is bool else name
        default = field.default if field.default is not dataclasses.MISSING else None
        shown = f" [{_show(default)}]" if flag.show_default and default not in (None, "") else ""
        text = flag.help + shown
        if command == "I" and flag.import_help:
            text = flag.import_help
        option = typer.Option(decl, help=text)
        annotation: Any = Annotated[base | None, option]
        params.append(
            inspect.Parameter(
                flag.field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    return params


def _plain_type(hint: Any) -> Any:
    """int for `int` and `int | None`; str for Literal choices (validated by the config)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return str if typing.get_origin(hint) is typing.Literal else hint


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


def sort_given(command: str, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The options the user gave (not None), placed into the config sections owning them."""
    out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for section, flag in flags_for(command):
        if options.get(flag.field) is not None:
            out[section][flag.field] = options[flag.field]
    return out


def with_signature(
    function: Callable[..., Any], leading: Iterable[inspect.Parameter], command: str
) -> Callable[..., Any]:
    """Give `function(**kwargs)` the typer signature: `leading` parameters, then the options
    of `command`; typer reads the signature to build the command line."""
    params = [*leading, *option_parameters(command)]
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in params}
    return function
