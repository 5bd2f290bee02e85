"""Benchmarks of p2phd on the reference's cases (the shapes of RESULTS.md), on CUDA or the CPU.

    python benchmarks/bench.py                      # every case, on CUDA when present
    python benchmarks/bench.py --cases train512 --precision fp32 --iters 30
    python benchmarks/bench.py --device cpu         # small shapes, for a quick look

Cases use Cityscapes shapes (label_nc 35 + instance map, batch 1) and the reference nets:
  train512   one training step at 1024x512: global G (ngf 64, 4 down, 9 blocks), 2-scale D,
             feature matching and VGG19 losses (random VGG weights: speed does not depend on them)
  infer512   G forward at 1024x512 under inference_mode
  train1024  one joint-stage step at 2048x1024: local G (ngf 32, 1 enhancer, 3 blocks),
             3-scale D, feature matching and VGG (--activation-checkpointing: the memory option)
  infer1024  local G forward at 2048x1024
  train2048  (only when named) a joint-stage step at 4096x2048: 2 enhancers (ngf 16), 3-scale D
  train512feat  train512 with the feature encoder E (--instance-feat; G takes 39 channels)
  pool25, pool250  instance-wise average pooling of 3 feature channels at 2048x1024 with 25
             and 250 instances (ops.instance_mean, forward)
  fid        FID Inception pool3 features of a batch of 8 images of 1024x512 (random weights)
  seg        the toy's oracle segmenter on a batch of 8 images of 1024x512
  synth      (only when named) `synthesize` end to end on 64 label + instance maps of
             2048x1024: the pipeline (reader and writer threads) against the serial loop
             (--workers 0), in images/s; a tiny G on the CPU (I/O dominates), the reference's
             global G on CUDA
  compile    (only when named) train512 and infer512, eager then torch.compile'd (one graph)
  prep       (only when named) `p2phd prep` of 1,000 synthetic 512x512 items (label,
             instance map, JPEG photo) at 1 and at 2 worker processes, in items/s
  prep-coco  (only when named) the same for 1,000 COCO-Stuff items whose instance maps are
             drawn from a COCO annotation file (8 polygon objects per image)
  prep-fields  (only when named) prep of 64 pairs of 1024x1024 measured fields as float32
             TIFF, FITS and .npy, against the same pairs as 8-bit RGB PNG photos, in items/s
  edit       (only when named) `p2phd edit`'s round trip over HTTP on loopback: restyle a car
             (or relabel it), synthesize, PNG back, at 512x256 with a trained toy run
             (--edit-run, default toy_demo/run, and its test maps, resized to --edit-width)
On the CPU the shapes shrink by 4 in each direction unless --full is given. Timings are
medians after warm-up with the device synchronised; peak memory is max_memory_allocated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from p2phd.config import LossConfig, NetConfig, PrepConfig, RunOptions, TrainConfig
from p2phd.data.toy_segmenter import toy_segmenter
from p2phd.nets.generator import build_generator
from p2phd.nets.inception import FIDInception
from p2phd.nets.vgg import Vgg19Features
from p2phd.ops import encode_input, instance_mean
from p2phd.runtime import autocast, resolve_device, resolve_precision
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD

CASES = (
    "train512",
    "infer512",
    "train1024",
    "infer1024",
    "train512feat",
    "pool25",
    "pool250",
    "fid",
    "seg",
)
SIZES = {"512": (512, 1024), "1024": (1024, 2048), "2048": (2048, 4096), "512feat": (512, 1024)}
LOCAL = {"512": (64, 0), "1024": (32, 1), "2048": (16, 2), "512feat": (64, 0)}  # ngf, levels


def scene(height: int, width: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch of one: blocky label and instance maps (real boundaries), a photo."""
    g = torch.Generator().manual_seed(seed)
    cells = (1, 1, height // 32, width // 32)
    label = torch.randint(0, 35, cells, generator=g).float()
    inst = label * 1000 + torch.randint(0, 4, cells, generator=g)
    up = (height, width)
    return {
        "label": F.interpolate(label, up, mode="nearest")[:, 0].int().to(device),
        "inst": F.interpolate(inst, up, mode="nearest")[:, 0].int().to(device),
        "image": (torch.rand(1, 3, height, width, generator=g) * 255).to(torch.uint8).to(device),
    }


def measure(
    fn: Callable[[], object], device: torch.device, warmup: int, iters: int
) -> tuple[float, float | None]:
    """(median ms, peak GiB or None on the CPU) of `fn` after `warmup` calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def config(case: str, args: argparse.Namespace, vgg_path: Path) -> TrainConfig:
    """The reference's nets for a case: G1 for the 512p cases, G1 + G2 for the 1024p ones."""
    ngf, enhancers = LOCAL[case.removeprefix("train").removeprefix("infer")]
    local = enhancers > 0
    net = NetConfig(
        label_nc=35,
        ngf=ngf,
        n_local_enhancers=enhancers,
        num_d=3 if local else 2,
        instance_feat=case.endswith("feat"),
    )
    return TrainConfig(
        stage="joint" if local else "global",
        net=net,
        loss=LossConfig(),
        run=RunOptions(
            vgg_weights=str(vgg_path),
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            channels_last=args.channels_last,
            activation_checkpointing=args.activation_checkpointing,
        ),
    )


def bench_train(
    cfg: TrainConfig, size: tuple[int, int], device: torch.device, args: argparse.Namespace
) -> tuple[float, float | None]:
    torch.manual_seed(0)
    model = Pix2PixHD(cfg, resolve_precision(cfg.run.precision, device), Dist(device=device))
    inputs = model.step_inputs(scene(*size, device))
    return measure(lambda: model.step(*inputs), device, args.warmup, args.iters)


def bench_infer(
    cfg: TrainConfig, size: tuple[int, int], device: torch.device, args: argparse.Namespace
) -> tuple[float, float | None]:
    precision = resolve_precision(cfg.run.precision, device)
    G = build_generator(cfg.net).to(device).eval()
    if cfg.run.channels_last:
        G.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fwd = torch.compile(G, fullgraph=True) if cfg.run.compile else G
    batch = scene(*size, device)

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            return fwd(encode_input(batch["label"], batch["inst"], label_nc=35))

    return measure(run, device, args.warmup, args.iters)


def bench_pool(
    instances: int, size: tuple[int, int], device: torch.device, args: argparse.Namespace
) -> tuple[float, float | None]:
    """ops.instance_mean over a map of `instances` rectangles (Cityscapes-style ids)."""
    rows = {25: 5, 250: 10}[instances]
    cells = torch.arange(instances, device=device).reshape(rows, -1)
    inst = F.interpolate(cells[None, None].float(), size, mode="nearest")[0].long() + 26000
    feats = torch.randn(1, 3, *size, device=device)
    return measure(lambda: instance_mean(feats, inst), device, args.warmup, args.iters)


def bench_eval(
    case: str, size: tuple[int, int], device: torch.device, args: argparse.Namespace
) -> tuple[float, float | None]:
    """Scoring a batch of 8 images: FID features (Inception, random weights) or the toy's
    segmenter (images per second = 8000 / ms)."""
    net = FIDInception() if case == "fid" else toy_segmenter()
    net = net.to(device).eval()
    images = torch.rand(8, 3, *size, device=device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return net(images)

    return measure(run, device, args.warmup, args.iters)


def bench_synth(
    device: torch.device, args: argparse.Namespace, tmp: Path
) -> list[dict[str, object]]:
    """images/s of synthesize over 64 maps of 2048x1024, serial loop vs pipeline."""
    from p2phd.atomic import write_json_atomic
    from p2phd.checkpoint import RunDir, config_record, save_checkpoint
    from p2phd.data.io import write_png
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.folder import SynthOptions, synthesize
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer
    from p2phd.training.state import training_tensors

    tiny = device.type == "cpu"  # on the CPU a G so small that the I/O is what is measured
    label_nc = 8 if tiny else 35
    net = NetConfig(
        label_nc=label_nc,
        ngf=2 if tiny else 64,
        n_downsample_global=4,
        n_blocks_global=1 if tiny else 9,
        ndf=8,
    )
    cfg = TrainConfig(net=net, loss=LossConfig(vgg_loss=False), run=RunOptions(device="cpu"))
    model = Pix2PixHD(cfg, "fp32", Dist(device=torch.device("cpu")))
    tensors, groups = training_tensors(model)
    run = RunDir(tmp / "run")
    record = config_record(cfg, [])
    save_checkpoint(run, 1, tensors, {"stage": "global", "optim": groups}, record, keep_last=1)
    write_json_atomic(run.config, record)
    for i in range(64):
        batch = scene(1024, 2048, torch.device("cpu"), seed=i)
        label = batch["label"][0] % label_nc
        write_png(tmp / "label" / f"{i:03d}.png", label.numpy().astype("uint8"))
        write_png(
            tmp / "inst" / f"{i:03d}.png",
            (label * 1000 + batch["inst"][0] % 1000).numpy().astype("uint16"),
        )
    rows = []
    for name, workers in (("synth serial", 0), ("synth pipeline", -1)):
        opts = SynthOptions(batch_size=4, workers=workers, save_labels=False)
        start = time.perf_counter()
        synthesize(
            Synthesizer(Run.open(run.root), DeviceOptions(str(device))),
            [tmp / "label"],
            tmp / name.replace(" ", "_"),
            inst=[tmp / "inst"],
            options=opts,
        )
        seconds = time.perf_counter() - start
        rows.append(
            {
                "case": name,
                "size": "2048x1024",
                "ms": round(1000 * seconds / 64, 2),
                "peak_gib": None,
                "images_per_s": round(64 / seconds, 2),
            }
        )
    return rows


def bench_edit(args: argparse.Namespace) -> list[dict[str, object]]:
    """ms per edit round trip: POST the edit, GET the new image (PNG), as the page does."""
    import threading
    import urllib.request

    import numpy as np

    from p2phd.edit.editor import Editor
    from p2phd.edit.server import TOKEN_HEADER, EditServer
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer

    data = args.edit_run.parent / "data" / "test"
    synth = Synthesizer(Run.open(args.edit_run), DeviceOptions("cpu"))
    editor = Editor(synth, [data / "label"], [data / "inst"], width=args.edit_width)
    server = EditServer(editor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert editor.maps is not None and editor.maps.inst is not None
    car = int(min(i for i in np.unique(editor.maps.inst) if i // 1000 == 6))
    clusters = editor.describe(car)["clusters"]
    counter = iter(range(1_000_000))

    def call(path: str, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", TOKEN_HEADER: server.token}
        request = urllib.request.Request(server.url + path[1:], payload, headers)
        urllib.request.urlopen(request).read()
        urllib.request.urlopen(server.url + "api/image.png").read()

    def restyle() -> None:
        call("/api/restyle", {"id": car, "cluster": next(counter) % max(clusters, 1)})

    def relabel() -> None:  # relabel the car and back: two round trips, halved below
        call("/api/relabel", {"id": car, "class": "person"})
        call("/api/undo", {})

    rows = []
    h, w = editor.maps.label.shape
    for name, fn, per in (("edit restyle", restyle, 1), ("edit relabel", relabel, 2)):
        ms, _ = measure(fn, torch.device("cpu"), args.warmup, args.iters)
        rows.append({"case": name, "size": f"{w}x{h}", "ms": round(ms / per, 2), "peak_gib": None})
    server.shutdown()
    editor.close()
    return rows


def bench_prep(tmp: Path, items: int = 1000) -> list[dict[str, object]]:
    """items/s of prep at 1 and 2 workers over `items` synthetic 512x512 items."""
    import numpy as np
    from PIL import Image

    src = tmp / "prep_src"
    for folder in ("train_label", "train_inst", "train_img"):
        (src / folder).mkdir(parents=True)
    for i in range(items):
        batch = scene(512, 512, torch.device("cpu"), seed=i)
        label = (batch["label"][0] % 20).numpy().astype(np.uint8)
        inst = (batch["inst"][0] % 20000).numpy().astype(np.uint16)
        Image.fromarray(label).save(src / "train_label" / f"{i:04d}.png")
        Image.fromarray(inst).save(src / "train_inst" / f"{i:04d}.png")
        photo = batch["image"][0].permute(1, 2, 0).numpy()
        Image.fromarray(photo).save(src / "train_img" / f"{i:04d}.jpg", quality=90)
    return _time_prep(src, tmp, "prep", items, PrepConfig(label_nc=20))


def bench_prep_coco(tmp: Path, items: int = 1000) -> list[dict[str, object]]:
    """items/s of prep at 1 and 2 workers over `items` synthetic 512x512 COCO-Stuff items,
    each with 8 polygon objects (4 people, 4 cars) to draw into its instance map."""
    import numpy as np
    from PIL import Image

    src = tmp / "coco_src"
    maps = src / "stuffthingmaps_trainval2017" / "train2017"
    maps.mkdir(parents=True)
    (src / "train2017").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(items):
        label = np.full((512, 512), 255, np.uint8)
        for k in range(8):
            y, x = 64 * k, int(rng.integers(0, 384))
            category = 1 if k % 2 else 3  # person, car
            label[y : y + 60, x : x + 120] = category - 1  # files store id - 1
            polygon = [x, y, x + 120, y, x + 120, y + 60, x, y + 60]
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": i,
                    "category_id": category,
                    "iscrowd": 0,
                    "segmentation": [[float(v) for v in polygon]],
                }
            )
        Image.fromarray(label).save(maps / f"{i:012d}.png")
        photo = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
        Image.fromarray(photo).save(src / "train2017" / f"{i:012d}.jpg", quality=90)
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": 512, "width": 512})
    annotation_file = src / "instances_train2017.json"
    annotation_file.write_text(json.dumps({"images": images, "annotations": annotations}))
    cfg = PrepConfig(coco_instances=(str(annotation_file),))
    return _time_prep(src, tmp, "prep-coco", items, cfg)


def bench_prep_fields(tmp: Path, items: int = 64) -> list[dict[str, object]]:
    """items/s of prep over `items` 1024x1024 pairs of measured fields as float32 TIFF,
    FITS and .npy (limits given: one pass), against the same pairs as 8-bit RGB PNG photos
    (label_nc 0), at 1 and 2 workers."""
    import numpy as np
    from PIL import Image

    from p2phd.config import FieldRange
    from p2phd.data.fields import write_field

    rng = np.random.default_rng(0)
    pair = [rng.normal(0, 500, (1, 1024, 1024)) for _ in range(2)]
    rows = []
    for suffix in (".tif", ".fits", ".npy", ".png"):
        src = tmp / f"fields{suffix}"
        for side, values in zip(("A", "B"), pair, strict=True):
            (src / f"train_{side}").mkdir(parents=True)
            for i in range(items):
                path = src / f"train_{side}" / f"{i:04d}{suffix}"
                if suffix == ".png":  # the photo path: 8-bit RGB
                    grey = np.clip(values[0] / 8 + 128, 0, 255).astype(np.uint8)
                    Image.fromarray(np.stack([grey] * 3, -1)).save(path)
                else:
                    write_field(path, values)
        limits = FieldRange(low=-3000, high=3000)
        cfg = PrepConfig() if suffix == ".png" else PrepConfig(in_range=limits, out_range=limits)
        for row in _time_prep(src, tmp, f"prep-fields{suffix}", items, cfg):
            what = "8-bit RGB PNG photos" if suffix == ".png" else f"float32 {suffix}"
            rows.append({**row, "case": f"{row['case']} ({what})", "size": "1024x1024"})
    return rows


def _time_prep(
    src: Path, tmp: Path, name: str, items: int, cfg: PrepConfig
) -> list[dict[str, object]]:
    """Prep `src` at 1 and at 2 workers: one row each."""
    from p2phd.data.prep import prepare_dataset

    rows = []
    for workers in (1, 2):
        start = time.perf_counter()
        prepare_dataset(src, tmp / f"{name}_{workers}", dataclasses.replace(cfg, workers=workers))
        seconds = time.perf_counter() - start
        rows.append(
            {
                "case": f"{name}, {workers} worker{'s' if workers > 1 else ''}",
                "size": "512x512",
                "ms": round(1000 * seconds / items, 2),
                "peak_gib": None,
                "images_per_s": round(items / seconds, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on CUDA) | fp32 | bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="reference shapes on the CPU too")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--edit-run", type=Path, default=Path("toy_demo/run"))
    parser.add_argument("--edit-width", type=int, default=512)
    args = parser.parse_args()
    device = resolve_device(args.device)
    small = device.type == "cpu" and not args.full
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 5)
    args.iters = args.iters if args.iters is not None else (3 if small else 20)
    scale = 4 if small else 1
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = Path(tmp) / "vgg19-random.safetensors"
        save_file(
            {k: v.contiguous() for k, v in Vgg19Features().features.state_dict().items()},
            str(vgg_path),
        )
        results = []
        for case in args.cases.split(","):
            if case == "synth":
                results += bench_synth(device, args, Path(tmp))
                continue
            if case in ("prep", "prep-coco", "prep-fields"):
                bench = {"prep": bench_prep, "prep-coco": bench_prep_coco}.get(
                    case, bench_prep_fields
                )
                results += bench(Path(tmp))
                continue
            if case == "edit":
                results += bench_edit(args)
                continue
            if case == "compile":
                for name in ("train512", "infer512"):
                    base = SIZES["512"]
                    size = (base[0] // scale, base[1] // scale)
                    fn = bench_train if name == "train512" else bench_infer
                    for on in (False, True):
                        args.compile = on
                        ms, peak = fn(config(name, args, vgg_path), size, device, args)
                        results.append(
                            {
                                "case": f"{name} {'compiled' if on else 'eager'}",
                                "size": f"{size[1]}x{size[0]}",
                                "ms": round(ms, 2),
                                "peak_gib": None if peak is None else round(peak, 2),
                            }
                        )
                args.compile = False
                continue
            if case.startswith("pool"):
                size = (1024 // scale, 2048 // scale)
                ms, peak = bench_pool(int(case.removeprefix("pool")), size, device, args)
            elif case in ("fid", "seg"):
                size = (512 // scale, 1024 // scale)
                ms, peak = bench_eval(case, size, device, args)
            else:
                base = SIZES[case.removeprefix("train").removeprefix("infer")]
                size = (base[0] // scale, base[1] // scale)
                fn = bench_train if case.startswith("train") else bench_infer
                ms, peak = fn(config(case, args, vgg_path), size, device, args)
            results.append(
                {
                    "case": case,
                    "size": f"{size[1]}x{size[0]}",
                    "ms": round(ms, 2),
                    "peak_gib": None if peak is None else round(peak, 2),
                }
            )
    machine = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "precision": resolve_precision(args.precision, device),
        "compile": args.compile,
        "channels_last": args.channels_last,
        "activation_checkpointing": args.activation_checkpointing,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(machine))
    print("| case | size | median ms | peak GiB | images/s |\n|---|---|---|---|---|")
    for r in results:
        rate = r.get("images_per_s", "-")
        print(f"| {r['case']} | {r['size']} | {r['ms']} | {r['peak_gib'] or '-'} | {rate} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
