"""House rules checked statically: import direction, no pickle, no device hard-coding."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "p2phd"

# module (or package prefix) -> p2phd modules it must not import
FORBIDDEN = {
    "config": ("p2phd.",),  # stdlib only, besides errors and jsonfile (allowed below)
    "jsonfile": ("p2phd.",),  # stdlib only, besides errors (allowed below)
    "limits": ("p2phd.",),  # stdlib only, besides errors (allowed below)
    "errors": ("p2phd.",),
    "ops": ("p2phd.",),
    "nets.": (
        "p2phd.training.trainer",
        "p2phd.checkpoint",
        "p2phd.cli",
        "p2phd.data",
        "p2phd.losses",
    ),
    "weights": ("p2phd.",),  # torch and safetensors only, besides errors (allowed below)
    "losses": ("p2phd.training", "p2phd.checkpoint", "p2phd.cli", "p2phd.data"),
    "checkpoint": ("p2phd.training", "p2phd.cli", "p2phd.synth"),
    "training.gan": (
        "p2phd.training.trainer",
        "p2phd.checkpoint",
        "p2phd.data",
        "p2phd.runtime.seed",
    ),
    "training.state": ("p2phd.training.trainer", "p2phd.cli", "p2phd.data"),
    "training.run_config": ("p2phd.training.trainer", "p2phd.training.gan", "p2phd.nets"),
    "training.process": (
        "p2phd.training.trainer",
        "p2phd.training.gan",
        "p2phd.nets",
        "p2phd.data",
    ),
    "cli.": ("p2phd.nets", "p2phd.losses", "p2phd.ops", "p2phd.training.gan"),
    # inference builds on the opened run; the editor and evaluate build on inference
    "synth.": ("p2phd.edit", "p2phd.eval", "p2phd.training.trainer", "p2phd.training.gan"),
}
ALLOWED = {
    "config": ("p2phd.errors", "p2phd.jsonfile", "p2phd.limits"),
    "errors": (),
    "limits": ("p2phd.errors",),
    "jsonfile": ("p2phd.errors",),
    "ops": (),
    "weights": ("p2phd.errors",),
}
# Who reads checkpoints: the training core writes and resumes them, the reference importer
# writes one, and on the inference side only the opened run (synth.run) reads them.
CHECKPOINT_READERS = ("checkpoint", "interop", "synth.run", "training.")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _matches(name: str, prefix: str) -> bool:
    """`name` is the module `prefix`, or inside the package `prefix` (which ends in a dot)."""
    return name == prefix or (prefix.endswith(".") and name.startswith(prefix))


def modules() -> list[tuple[str, Path]]:
    return [
        (".".join(p.relative_to(PACKAGE).with_suffix("").parts), p)
        for p in sorted(PACKAGE.rglob("*.py"))
    ]


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_follow_the_layering(name: str, path: Path) -> None:
    found = {m for m in imports(path) if m.startswith("p2phd")}
    if name != "__main__" and not name.startswith("cli"):
        assert not any(m.startswith("p2phd.cli") for m in found), "only __main__ imports the CLI"
    for prefix, banned in FORBIDDEN.items():
        if _matches(name, prefix):
            allowed = ALLOWED.get(prefix, ())
            bad = sorted(m for m in found if m.startswith(banned) and m not in allowed)
            assert not bad, f"p2phd.{name} must not import {bad}"
    if "p2phd.checkpoint" in found:
        hint = "open the run with p2phd.synth.run.Run"
        assert any(_matches(name, r) for r in CHECKPOINT_READERS), f"p2phd.{name}: {hint}"


# The one reader of pickles: the restricted unpickler for the reference's cluster files (and
# the one reader of .pth files, which only catches what torch's weights-only reader refuses).
PICKLE_ALLOWED = {
    ("interop", "import pickle  # only for the restricted reader of the reference's cluster file"),
    ("interop", "class _ArraysOnly(pickle.Unpickler):"),
    ("interop", 'raise pickle.UnpicklingError(f"{module}.{name}")'),
    ("interop", "except pickle.UnpicklingError as exc:"),
    ("weights", "import pickle  # only to catch the refusals of torch's weights-only reader"),
    ("weights", "except pickle.UnpicklingError as exc:"),
    # torch.export archives: their pickled parts read weights-only, pickle's loads refused
    ("eval.exported", "import pickle  # only to catch the refusals of torch's weights-only reader"),
    (
        "eval.exported",
        "except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:",
    ),
    ("eval.exported", "except pickle.UnpicklingError as exc:"),
    ("eval.exported", "saved = (torch.load, _package.pickle)"),
    ("eval.exported", "torch.load, _package.pickle = load, _NoPickle  # type: ignore[assignment]"),
    ("eval.exported", "torch.load, _package.pickle = saved"),
    # measured fields: plain arrays only, object arrays refused
    ("data.fields", "return np.load(path, allow_pickle=False)"),
    # a TorchScript segmenter the user names for evaluate: TorchScript, not Python pickles
    ("eval.segmenter", "return torch.jit.load(str(path), map_location=device).eval()"),
}


def test_no_pickle_anywhere() -> None:
    pattern = re.compile(r"import pickle|pickle\.|np\.load\(|allow_pickle|jit\.load|torch\.save\(")
    for name, path in modules():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if (name, line.strip()) in PICKLE_ALLOWED:
                continue
            assert not pattern.search(line), f"{path.name}:{number}: {line.strip()}"
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path.name}:{number}: {line.strip()}"


def test_no_hard_coded_cuda_or_prints() -> None:
    for name, path in modules():
        text = path.read_text()
        assert ".cuda()" not in text, name
        if name not in ("cli", "__main__"):
            assert not re.search(r"^\s*print\(", text, re.MULTILINE), f"{name} prints"


def _module_imports(path: Path, names: set[str]) -> set[str]:
    """The p2phd modules `path` imports anywhere (in functions too), `from pkg import mod`
    counted as `pkg.mod`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for module in candidates:
            name = module.removeprefix("p2phd.")
            if module.startswith("p2phd.") and name in names:
                found.add(name)
            elif module.startswith("p2phd.") and f"{name}.__init__" in names:
                found.add(f"{name}.__init__")
    return found


def test_no_import_cycles() -> None:
    """A cycle, even through an import inside a function, means two modules are one job."""
    names = {name for name, _ in modules()}
    graph = {name: _module_imports(path, names) - {name} for name, path in modules()}
    cycles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join((*trail, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
    assert not cycles, cycles[:3]
