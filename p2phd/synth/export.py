"""`p2phd export`: a run's generator as an ONNX file a deployment can run without p2phd.

The graph takes what synthesis takes, not G's encoded input: the label map (class ids,
`[N, H, W]` int64; for runs on RGB inputs, the image `[N, C, H, W]` float in [-1, 1]), the
instance map (`[N, H, W]` int64, for runs with instance maps) and the feature map
(`[N, feat_num, H, W]` float, for feature runs: each instance's style vector painted over
it), and builds the one-hot labels and the boundary map itself; its output is the image
`[N, output_nc, H, W]` in [-1, 1]. With `raw_input`, it takes G's own input tensor instead.
Height and width are dynamic (multiples of the run's 2^downsamplings).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from p2phd.atomic import atomic_path
from p2phd.config import NetConfig
from p2phd.errors import ConfigError
from p2phd.ops import encode_input
from p2phd.synth.run import Run


class Deployable(nn.Module):
    """G with the input encoding in front of it (see the module's docstring)."""

    def __init__(self, generator: nn.Module, net: NetConfig) -> None:
        super().__init__()
        self.generator = generator
        self.label_nc = net.label_nc

    def forward(
        self, label: Tensor, inst: Tensor | None = None, features: Tensor | None = None
    ) -> Tensor:
        return self.generator(encode_input(label, inst, features, label_nc=self.label_nc))


@dataclass(frozen=True)
class ExportReport:
    path: Path
    inputs: dict[str, list[str]]  # name -> its dimensions
    outputs: dict[str, list[str]]

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "inputs": self.inputs, "outputs": self.outputs}


def export_onnx(run: Run, out: Path, *, raw_input: bool = False, opset: int = 18) -> ExportReport:
    """Write the run's G as ONNX (torch's dynamo exporter) to `out`."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"p2phd export needs {' and '.join(missing)}: pip install 'p2phd[export]'"
        )
    if opset < 18:
        raise ConfigError(f"--opset {opset}: the exporter writes opset 18 or newer")
    net = run.net
    G = run.generator(torch.device("cpu"))
    m = net.size_multiple  # H and W: multiples of it
    dims = (
        torch.export.Dim("n", min=1, max=1024),
        torch.export.Dim("h", min=1, max=4096) * m,
        torch.export.Dim("w", min=1, max=4096) * m,
    )
    names, shapes, example, spec = _signature(net, raw_input, 2 * m, 3 * m, dims)
    module = G if raw_input else Deployable(G, net)
    with _quiet_exporter(), atomic_path(Path(out)) as tmp:
        program = torch.onnx.export(
            module.eval(),
            tuple(example),
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=["image"],
            dynamic_shapes=spec,
            verbose=False,
        )
        assert program is not None
        program.save(str(tmp))
    image = ["N", str(net.output_nc), "H", "W"]
    return ExportReport(Path(out), dict(zip(names, shapes, strict=True)), {"image": image})


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter reports its progress through warnings and logging: not ours to show."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _signature(
    net: NetConfig, raw: bool, h: int, w: int, dims: tuple[object, object, object]
) -> tuple[list[str], list[list[str]], list[Tensor], tuple[object, ...]]:
    """Input names, their documented dimensions, example tensors (a batch of 2: torch.export
    would fix a dimension it sees as 1) and dynamic shapes."""
    n, height, width = dims
    images = {0: n, 2: height, 3: width}
    maps = {0: n, 1: height, 2: width}
    if raw:
        c = net.generator_in_channels
        return ["input"], [["N", str(c), "H", "W"]], [torch.zeros(2, c, h, w)], (images,)
    rows: list[tuple[str, list[str], Tensor, dict[int, object]]] = []
    if net.label_nc == 0:
        rows.append(
            (
                "image_input",
                ["N", str(net.input_nc), "H", "W"],
                torch.zeros(2, net.input_nc, h, w),
                images,
            )
        )
    else:
        rows.append(("label", ["N", "H", "W"], torch.zeros(2, h, w, dtype=torch.int64), maps))
    if net.instance:
        rows.append(("instance", ["N", "H", "W"], torch.zeros(2, h, w, dtype=torch.int64), maps))
    if net.use_features:
        rows.append(
            (
                "features",
                ["N", str(net.feat_num), "H", "W"],
                torch.zeros(2, net.feat_num, h, w),
                images,
            )
        )
    names, shapes, example, spec = zip(*rows, strict=True)
    return list(names), list(shapes), list(example), tuple(spec)
