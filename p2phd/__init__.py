"""p2phd: pix2pixHD (Wang et al., CVPR 2018) as a fast, dependable command-line toolkit, with
the same core as a Python API for notebooks.

The public surface (the CLI is a thin layer over these; everything else is private):

    Run.open(path)              a trained run: its config, class names, G, E and style bank
    Synthesizer(run, device)    renders numpy label (+ instance) maps to numpy images, with
                                styles and class edits; `synth(label, inst)` renders one
    DeviceOptions               --device, --precision and --compile of every command
    StyleSpec, StyleMap         how regions pick their styles (random, a cluster, a map)
    read_style_map              a style-map JSON file (the editor writes them) as a StyleMap
    SynthOptions, synthesize    label-map folders to image files and an index.html
    EvalOptions, Convention     what evaluate scores and how the segmenter wants its input
    evaluate_run                synthesize a dataset's split with a run, then score it
    evaluate_folders            score a folder of images against photos and label maps
    Scores                      every number of one evaluation (eval.json's content)
    evaluate_field_run          score a run on measured fields: MAE, RMSE, CC, PSNR, SSIM
    read_field, write_field     measured fields (.npy, TIFF, FITS, 16-bit PNG) as [C, H, W]
    encode_features             E's per-instance features of a dataset (features.safetensors)
    cluster_features            k-means per class over them: the style bank
    export_onnx                 G with its input encoding as an ONNX file
    P2phdError                  every error a user can fix; its message names the file and fix

Importing p2phd is cheap: the names above load (with torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_HOMES = {
    "Run": "p2phd.synth.run",
    "Synthesizer": "p2phd.synth.synthesizer",
    "DeviceOptions": "p2phd.runtime",
    "StyleSpec": "p2phd.synth.styles",
    "StyleMap": "p2phd.synth.styles",
    "read_style_map": "p2phd.synth.styles",
    "SynthOptions": "p2phd.synth.folder",
    "synthesize": "p2phd.synth.folder",
    "EvalOptions": "p2phd.eval.evaluate",
    "Convention": "p2phd.eval.segmenter",
    "evaluate_run": "p2phd.eval.evaluate",
    "evaluate_folders": "p2phd.eval.evaluate",
    "Scores": "p2phd.eval.scores",
    "evaluate_field_run": "p2phd.eval.field_eval",
    "read_field": "p2phd.data.fields",
    "write_field": "p2phd.data.fields",
    "encode_features": "p2phd.synth.features",
    "cluster_features": "p2phd.synth.features",
    "export_onnx": "p2phd.synth.export",
    "P2phdError": "p2phd.errors",
}

__all__ = [
    "__version__",
    "Run",
    "Synthesizer",
    "DeviceOptions",
    "StyleSpec",
    "StyleMap",
    "read_style_map",
    "SynthOptions",
    "synthesize",
    "EvalOptions",
    "Convention",
    "evaluate_run",
    "evaluate_folders",
    "Scores",
    "evaluate_field_run",
    "read_field",
    "write_field",
    "encode_features",
    "cluster_features",
    "export_onnx",
    "P2phdError",
]

if TYPE_CHECKING:
    from p2phd.data.fields import read_field, write_field
    from p2phd.errors import P2phdError
    from p2phd.eval.evaluate import EvalOptions, evaluate_folders, evaluate_run
    from p2phd.eval.field_eval import evaluate_field_run
    from p2phd.eval.scores import Scores
    from p2phd.eval.segmenter import Convention
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.export import export_onnx
    from p2phd.synth.features import cluster_features, encode_features
    from p2phd.synth.folder import SynthOptions, synthesize
    from p2phd.synth.run import Run
    from p2phd.synth.styles import StyleMap, StyleSpec, read_style_map
    from p2phd.synth.synthesizer import Synthesizer


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562), so `import p2phd` stays cheap."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'p2phd' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
