"""`p2phd export`: a run's generator as an ONNX file a deployment can run without p2phd.

The graph takes what synthesis takes, not G's encoded input: the label map (class ids,
`[N, H, W]` int64; for runs on RGB inputs, the image `[N, C, H, W]` float in [-1, 1]), the
instance map (`[N, H, W]` int64, for runs with instance maps) and the feature map
(`[N, feat_num, H, W]` float, for feature runs: each instance's style vector painted over
it), and builds the one-hot labels and the boundary map itself; its output is the image
`[N, output_nc, H, W]` in [-1, 1]. With `raw_input`, it takes G's own input tensor instead.
Height and width are dynamic (multiples of the run's 2^downsamplings).

With `styles="bank"` (feature runs), the style bank (`p2phd cluster`) is inside the graph:
instead of feature maps it takes `clusters` `[N, R]` int64, the cluster index of each region
id (an instance id such as 26001 indexes it directly; for runs that pool per class, the
class), and paints each region with that cluster's centre of its class, as synthesize's
style map does. A class with fewer clusters takes the index modulo its count (as `--style
cluster=I`); -1, a region id >= R, or a class without clusters give the class's mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from p2phd.atomic import atomic_path, check_apart
from p2phd.config import FieldSpec, NetConfig
from p2phd.errors import ConfigError
from p2phd.ops import encode_input
from p2phd.synth.bank import FeatureBank
from p2phd.synth.run import Run

STYLES = ("maps", "bank")


class BankStyles(nn.Module):
    """The style bank as lookup tables in the graph: (label, region, clusters) -> the
    `[N, F, H, W]` feature maps (see the module's docstring)."""

    centers: Tensor  # [total clusters, F]; one row of zeros for a bank with none
    means: Tensor  # [classes, F]
    offset: Tensor  # [classes]: where class c's centres start
    count: Tensor  # [classes]: how many it has

    def __init__(self, bank: FeatureBank, feat_num: int) -> None:
        super().__init__()
        centers = bank.centers if len(bank.centers) else torch.zeros(1, feat_num)
        self.register_buffer("centers", centers.float().clone())
        self.register_buffer("means", bank.means.float().clone())
        self.register_buffer("offset", torch.from_numpy(bank.offset).long())
        self.register_buffer("count", torch.from_numpy(bank.count).long())

    def forward(self, label: Tensor, region: Tensor, clusters: Tensor) -> Tensor:
        n, h, w = label.shape
        r = clusters.shape[1]
        ids = region.reshape(n, h * w)
        chosen = torch.gather(clusters, 1, ids.clamp(0, r - 1))
        chosen = torch.where(ids < r, chosen, -1)
        cls = label.reshape(n, h * w).clamp(0, self.count.shape[0] - 1)
        k = self.count[cls]
        flat = self.offset[cls] + torch.remainder(chosen.clamp(min=0), k.clamp(min=1))
        use = ((chosen >= 0) & (k > 0)).unsqueeze(-1)
        features = torch.where(use, self.centers[flat], self.means[cls])  # [N, H*W, F]
        return features.permute(0, 2, 1).reshape(n, -1, h, w)


class Deployable(nn.Module):
    """G with the input encoding in front of it (see the module's docstring)."""

    def __init__(
        self, generator: nn.Module, net: NetConfig, bank: FeatureBank | None = None
    ) -> None:
        super().__init__()
        self.generator = generator
        self.net = net
        self.bank = BankStyles(bank, net.feat_num) if bank is not None else None

    def forward(
        self, label: Tensor, inst: Tensor | None = None, styles: Tensor | None = None
    ) -> Tensor:
        """`styles`: the feature maps, or (with the bank inside) each region's cluster."""
        if self.bank is not None and styles is not None:
            styles = self.bank(label, self.net.pool_map(label, inst), styles)
        return self.generator(encode_input(label, inst, styles, label_nc=self.net.label_nc))


@dataclass(frozen=True)
class ExportReport:
    path: Path
    inputs: dict[str, list[str]]  # name -> its dimensions
    outputs: dict[str, list[str]]

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "inputs": self.inputs, "outputs": self.outputs}


def export_onnx(
    run: Run, out: Path, *, raw_input: bool = False, opset: int = 18, styles: str = "maps"
) -> ExportReport:
    """Write the run's G as ONNX (torch's dynamo exporter) to `out`; `styles="bank"` puts
    the style bank inside it."""
    check_apart(out, [("the run", run.root)], "--out")  # its config.json, its weights
    if Path(out).suffix.lower() != ".onnx":  # a typo would overwrite some other file
        raise ConfigError(f"--out {out}: export writes an ONNX file; name it .onnx")
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"p2phd export needs {' and '.join(missing)}: pip install 'p2phd[export]'"
        )
    import onnx

    newest = onnx.defs.onnx_opset_version()  # what this onnx can convert the graph to
    if not 18 <= opset <= newest:
        raise ConfigError(
            f"--opset {opset}: the exporter writes opsets 18 to {newest} (this onnx's newest)"
        )
    net = run.net
    if styles not in STYLES:
        raise ConfigError(f"--styles {styles}: use maps (feature maps in) or bank")
    bank = None
    if styles == "bank":
        if not net.use_features:
            raise ConfigError(
                f"--styles bank: {run.root} was trained without instance features, so it "
                "has no style bank; drop --styles"
            )
        if raw_input:
            raise ConfigError("--styles bank builds G's input in the graph; drop --raw-input")
        bank = run.style_bank()
    G = run.generator(torch.device("cpu"))
    m = net.size_multiple  # H and W: multiples of it
    dims = (
        torch.export.Dim("n", min=1, max=1024),
        torch.export.Dim("h", min=1, max=4096) * m,
        torch.export.Dim("w", min=1, max=4096) * m,
        torch.export.Dim("r", min=1, max=65536),
    )
    names, shapes, example, spec = _signature(net, raw_input, bank is not None, 2 * m, 3 * m, dims)
    module = G if raw_input else Deployable(G, net, bank)
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
        if net.fields is not None:
            _record_fields(tmp, net.fields)
    image = ["N", str(net.output_nc), "H", "W"]
    return ExportReport(Path(out), dict(zip(names, shapes, strict=True)), {"image": image})


def _record_fields(path: Path, fields: FieldSpec) -> None:
    """A measured-field run's mapping in the model's metadata (`p2phd.fields`, JSON): the
    graph takes and gives values in [-1, 1], and this says which physical values they are."""
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "p2phd.fields", json.dumps(dataclasses.asdict(fields))
    onnx.save(model, str(path))


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
    net: NetConfig, raw: bool, bank: bool, h: int, w: int, dims: tuple[object, ...]
) -> tuple[list[str], list[list[str]], list[Tensor], tuple[object, ...]]:
    """Input names, their documented dimensions, example tensors (a batch of 2: torch.export
    would fix a dimension it sees as 1) and dynamic shapes."""
    n, height, width, regions = dims
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
    if bank:
        table = torch.zeros(2, 7, dtype=torch.int64)
        rows.append(("clusters", ["N", "R"], table, {0: n, 1: regions}))
    elif net.use_features:
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
