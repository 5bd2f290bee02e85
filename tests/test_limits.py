"""Options and sizes past p2phd's limits (p2phd.limits) are refused before any work, in one
line naming the limit and a value that fits (issue 23, point 3): they asked numpy or torch
for terabytes, ran for minutes with no output, or ended in a library's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import p2phd.limits
from p2phd.config import NetConfig
from p2phd.errors import ConfigError
from p2phd.limits import check_discriminator_scales

from helpers import TINY, cli, one_line, synth

TEST = ["--device", "cpu", "--quiet"]
BIG = "100000000000000000000000"


@pytest.mark.parametrize("seed", ["-1", BIG, "4294967296"])
def test_seeds_lie_in_0_to_2_32(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, seed: str
) -> None:
    limit = "a seed lies in 0..4294967295; pass e.g. 0"
    one_line(*synth(tiny_feature_run, toy_data, tmp_path / "o", "--seed", seed), limit)
    one_line(*cli("cluster", tiny_feature_run, "--k", "2", "--seed", seed, "--quiet"), limit)
    one_line(*cli("evaluate", tiny_feature_run, toy_data, "--seed", seed, *TEST), limit)
    one_line(*cli("toy", tmp_path / "toy", "--seed", seed, "--quiet"), limit)
    train = cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, "--seed", seed)
    one_line(*train, limit)
    assert not (tmp_path / "o").exists() and not (tmp_path / "toy").exists()


def test_sides_past_the_largest_are_refused(
    tiny_feature_run: Path, toy_data: Path, toy_source: Path, tmp_path: Path
) -> None:
    limit = "sides lie in 1..16384; pass e.g. 16384"
    one_line(*synth(tiny_feature_run, toy_data, tmp_path / "o", "--width", "10000000"), limit)
    one_line(*cli("evaluate", tiny_feature_run, toy_data, "--width", "10000000", *TEST), limit)
    one_line(
        *cli("encode-features", tiny_feature_run, toy_data, "--width", "10000000", *TEST), limit
    )
    one_line(*cli("prep", toy_source, tmp_path / "d", "--width", "10000000", "--quiet"), limit)
    one_line(
        *cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, "--load-width", "100000"),
        "--load-width 100000: sides lie in 8..16384",
    )
    for size, fit in (("100000x100000", "16384"), ("0x0", "1")):
        one_line(
            *cli("evaluate", tiny_feature_run, toy_data, "--seg-size", size, *TEST),
            f"--seg-size width {size.split('x')[0]}: sides lie in 1..16384; pass e.g. {fit}",
        )


def test_counts_past_their_limits_are_refused(
    tiny_feature_run: Path, toy_data: Path, toy_source: Path, tmp_path: Path
) -> None:
    test = toy_data / "test"
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o", "--variations", "100000"),
        "--variations 100000: lies in 1..1000; pass e.g. 1000",
    )
    one_line(
        *cli("prep", toy_source, tmp_path / "d", "--label-nc", "100000", "--quiet"),
        "--label-nc 100000: lies in 0..4096",
    )
    one_line(
        *cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, "--label-nc", "100000"),
        "--label-nc 100000: lies in 0..4096",
    )
    for port in ("-1", "99999"):
        one_line(
            *cli("edit", tiny_feature_run, test / "label", "--inst", test / "inst", "--port", port),
            f"--port {port}: lies in 0..65535",
        )
    one_line(
        *cli("export", tiny_feature_run, "--out", tmp_path / "g.onnx", "--opset", "999"),
        "--opset 999: the exporter writes opsets 18 to",
    )
    assert not (tmp_path / "g.onnx").exists()


def test_discriminator_scales_must_fit_the_samples(toy_data: Path, tmp_path: Path) -> None:
    """The toy's 128x64 samples hold 7 scales (the coarsest 2x1); an 8th is 1x1."""
    run = tmp_path / "r"
    one_line(
        *cli("train-global", toy_data, "--run", run, *TINY, "--num-d", "9"),
        "--num-d 9: a 128x64 training sample holds 7 discriminator scales; pass --num-d 7",
    )
    code, out = cli(
        "train-global", toy_data, "--run", run, *TINY, "--num-d", "7", "--max-steps", "1"
    )
    assert code == 0, out  # the refused first start left the run free to take the fix
    for num_d, (w, h), fits in ((7, (64, 64), False), (6, (64, 64), True), (8, (256, 1), True)):
        net = NetConfig(label_nc=8, num_d=num_d)
        if fits:
            check_discriminator_scales(net, w, h)
        else:
            with pytest.raises(ConfigError, match="holds 6 discriminator scales"):
                check_discriminator_scales(net, w, h)


def test_memory_past_the_device_is_refused_and_much_of_it_said(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The estimate, against a device of 256 MiB: 2048-wide maps do not fit; 512 do, but take
    more than half of it, which a note says."""
    monkeypatch.setattr(p2phd.limits, "device_memory", lambda device: 256 * 2**20)
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o", "--width", "2048"),
        "synthesizing 2 maps of 2048x1024 at once: needs about",
        "more than the 256 MiB of cpu; pass a smaller --width or --batch-size",
    )
    assert not (tmp_path / "o").exists()
    code, out = cli(
        "synthesize", tiny_feature_run, toy_data / "test" / "label", "--inst",
        toy_data / "test" / "inst", "--out", tmp_path / "o", "--device", "cpu", "--width", "512",
    )  # fmt: skip
    assert code == 0, out
    assert "note: synthesizing 2 maps of 512x256 at once needs about" in " ".join(out.split())


def test_running_out_of_memory_anyway_is_one_line(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the estimate is short of the truth, the allocation's failure is still one line."""
    import p2phd.synth.synthesizer

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(p2phd.synth.synthesizer.Synthesizer, "render", exhausted)
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o"),
        "out of memory; pass a smaller --width",
    )


def test_training_past_the_device_is_refused_before_a_step(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p2phd.limits, "device_memory", lambda device: 2**20)
    one_line(
        *cli("train-global", toy_data, "--run", tmp_path / "r", *TINY),
        "training at 128x64 (batch 1): needs about",
        "more than the 1 MiB of cpu; pass a smaller --load-width or --crop-size",
    )
    assert not list((tmp_path / "r").glob("checkpoints/step-*"))


def test_net_shapes_past_their_limits_are_refused(toy_data: Path, tmp_path: Path) -> None:
    """10^23 residual blocks, enhancers or downsamplings hung while the net was built."""
    run = tmp_path / "r"
    for option, value, limit in (
        ("--n-blocks-global", BIG, "0..64"),
        ("--n-downsample-global", "1000000000", "1..8"),
        ("--ngf", "100000", "1..1024"),
        ("--num-workers", "100000", "0..256"),
    ):
        one_line(
            *cli("train-global", toy_data, "--run", run, *TINY, option, value),
            f"{option} {value}: lies in {limit}",
        )
    for field, value in (("n_local_enhancers", 10**9), ("n_blocks_local", 10**23)):
        with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} {value}: lies in"):
            NetConfig(label_nc=8, **{field: value})  # type: ignore[arg-type]
    assert not run.exists()


def test_a_net_too_wide_for_the_device_names_the_net(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """G's weights count in the estimate: 16384 channels at the bottleneck (77 GB to train)
    pass a 16 GiB device before a 128x64 image does, and the fix is a narrower net."""
    net = NetConfig(label_nc=8)
    assert abs(p2phd.limits.generator_parameters(net) / 182_546_755 - 1) < 0.01
    monkeypatch.setattr(p2phd.limits, "device_memory", lambda device: 16 * 2**30)
    wide = ["--ngf", "1024", "--n-downsample-global", "4"]
    one_line(
        *cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, *wide),
        "training at 128x64 (batch 1): needs about",
        "the net is the most of it: pass a smaller --ngf, fewer downsamplings or blocks",
    )


def test_counts_of_toy_synthesize_and_evaluate_have_limits(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    one_line(
        *cli("toy", tmp_path / "t", "--train", BIG, "--quiet"),
        f"--train {BIG}: lies in 1..100000",
    )
    one_line(
        *cli("toy", tmp_path / "t", "--kind", "field", "--test", "1000000", "--quiet"),
        "--test 1000000: lies in 1..100000",
    )
    one_line(
        *synth(tiny_feature_run, toy_data, tmp_path / "o", "--workers", "-5"),
        "--workers -5: lies in -1..256",
    )
    one_line(
        *cli("evaluate", tiny_feature_run, toy_data, "--ignore-index", "-1000000000", *TEST),
        "--ignore-index -1000000000: lies in 0..4096",
    )
    assert not (tmp_path / "t").exists() and not (tmp_path / "o").exists()


def test_the_toy_takes_the_sides_its_help_says(tmp_path: Path) -> None:
    """The help said 128 .. 2048 while 100 was taken: the help now states the checks."""
    code, out = cli("toy", "--help")
    assert code == 0 and "scenes 32 .. 2048, fields 16 .. 4096" in " ".join(out.split())
    for kind, side, fits in (("scenes", 31, False), ("scenes", 32, True), ("field", 15, False)):
        out_dir = tmp_path / f"{kind}{side}"
        code, out = cli("toy", out_dir, "--kind", kind, "--width", side, "--train", 1, "--quiet")
        assert (code == 0) == fits == out_dir.is_dir() and "Traceback" not in out, out
