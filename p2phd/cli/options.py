"""Options shared by several commands. None means "not given": defaults live in config.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from p2phd.cli.app import Opt

LabelNc = Annotated[int | None, Opt("--label-nc", help="Classes (default: the data's).")]
Instance = Annotated[bool | None, Opt("--instance/--no-instance", help="Boundary map input.")]
Ngf = Annotated[int | None, Opt(help="Generator width (global 64; local: G1's / 2^N).")]
NDown = Annotated[int | None, Opt(help="G1 downsamplings (4).")]
NBlocks = Annotated[int | None, Opt(help="G1 residual blocks (9).")]
Norm = Annotated[str | None, Opt(help="instance | batch.")]
NumD = Annotated[int | None, Opt("--num-d", help="D scales (global 2, local 3).")]
NLayersD = Annotated[int | None, Opt("--n-layers-d", help="Layers per D scale (3).")]
Ndf = Annotated[int | None, Opt(help="D width (64).")]
InstFeat = Annotated[bool | None, Opt("--instance-feat", help="Per-instance features from E.")]
LabelFeat = Annotated[bool | None, Opt("--label-feat", help="Per-class features from E.")]
FeatNum = Annotated[int | None, Opt(help="Feature channels (3).")]
Nef = Annotated[int | None, Opt(help="Encoder width (16).")]
NDownE = Annotated[int | None, Opt("--n-downsample-e", help="Encoder downsamplings (4).")]
ClassDivisor = Annotated[int | None, Opt(help="Instance id i >= N has class i // N (1000).")]
GanMode = Annotated[str | None, Opt(help="lsgan | bce | hinge.")]
LambdaFeat = Annotated[float | None, Opt(help="Feature-matching and VGG weight (10).")]
GanFeat = Annotated[
    bool | None, Opt("--ganfeat-loss/--no-ganfeat-loss", help="D feature matching.")
]
VggLoss = Annotated[bool | None, Opt("--vgg-loss/--no-vgg-loss", help="VGG19 perceptual loss.")]
VggWeights = Annotated[str | None, Opt(help="Local vgg19 .pth or .safetensors.")]
Lr = Annotated[float | None, Opt(help="Adam learning rate (2e-4).")]
Beta1 = Annotated[float | None, Opt(help="Adam beta1 (0.5).")]
Epochs = Annotated[int | None, Opt(help="Epochs at constant lr (100).")]
DecayEpochs = Annotated[int | None, Opt(help="Epochs of linear decay to 0 (100).")]
BatchSize = Annotated[int | None, Opt(help="Images per step and process (1).")]
Seed = Annotated[int | None, Opt(help="Seed of weights, order and augmentation.")]
LoadWidth = Annotated[int | None, Opt(help="Resize to this width on load.")]
CropSize = Annotated[int | None, Opt(help="Random square crop.")]
Flip = Annotated[bool | None, Opt("--flip/--no-flip", help="Random horizontal flip.")]
Device = Annotated[str | None, Opt(help="auto | cpu | cuda | cuda:N.")]
Precision = Annotated[str | None, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")]
Compile = Annotated[bool | None, Opt("--compile/--no-compile", help="torch.compile G and D.")]
ChannelsLast = Annotated[bool | None, Opt("--channels-last/--no-channels-last")]
ActCkpt = Annotated[
    bool | None,
    Opt(
        "--activation-checkpointing/--no-activation-checkpointing",
        help="Recompute activations: less memory, more time.",
    ),
]
MaxSteps = Annotated[int | None, Opt(help="Stop after this many steps in total.")]
NumWorkers = Annotated[int | None, Opt(help="Data loader processes (2).")]
LogEvery = Annotated[int | None, Opt(help="Steps between log lines (50).")]
SampleEvery = Annotated[int | None, Opt(help="Steps between sample grids (500).")]
SaveEvery = Annotated[int | None, Opt(help="Steps between checkpoints (1000).")]
KeepLast = Annotated[int | None, Opt(help="Checkpoints kept (3).")]
MaxNonfinite = Annotated[int | None, Opt(help="Stop after N bad steps in a row (10).")]
DryRun = Annotated[bool, Opt("--dry-run", help="Print the resolved config and stop.")]
Data = Annotated[Path, typer.Argument(help="Prepped dataset folder (p2phd prep).")]
Run = Annotated[
    Path,
    Opt(
        "--run",
        "--run-dir",
        help="Run folder; rerunning the command "
        "resumes it. Under torchrun spell it --run-dir (torchrun would take "
        "--run for its own --run-path).",
    ),
]
