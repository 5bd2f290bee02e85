#!/usr/bin/env bash
# Make .venv with p2phd and its test tools, quickly and offline-friendly. Sourced by
# examples/toy_demo.sh and tests/run.sh; sets VENV. Safe to run again: it only installs
# what changed.
#   - A torch already importable by $PYTHON is reused (the venv sees system packages).
#   - Otherwise, on a machine without an NVIDIA GPU, a CPU build of torch is preferred over
#     the multi-GB CUDA build: a local +cpu wheel from pip's find-links, else PyTorch's CPU
#     index, else whatever the package registry offers.
#   - `source .venv/bin/activate` then puts the venv's p2phd and torchrun on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${P2PHD_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "setup: reusing the torch installed for $PYTHON"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: installing torch (CUDA build: an NVIDIA GPU is present)"
    "${PIP[@]}" install torch
  else
    wheel=$("$VENV/bin/python" - <<'PY'
import glob, os, re, subprocess, sys
tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
dirs = os.environ.get("PIP_FIND_LINKS", "").split()
try:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True, timeout=30).stdout
    dirs += [d for line in out.splitlines() if "find-links" in line
             for d in line.split("=", 1)[1].strip("'\" ").split()]
except Exception:
    pass
found = []
for d in dirs:
    for path in glob.glob(os.path.join(d.removeprefix("file://"), f"torch-*+cpu-{tag}-*.whl")):
        m = re.match(r"torch-(\d+)\.(\d+)\.(\d+)\+cpu", os.path.basename(path))
        if m:
            found.append((tuple(map(int, m.groups())), path))
print(max(found)[1] if found else "")
PY
)
    if [ -n "$wheel" ]; then
      echo "setup: installing the local CPU build of torch: $(basename "$wheel")"
      "${PIP[@]}" install "$wheel"
    elif "${PIP[@]}" install --timeout 15 --retries 0 torch \
        --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
      echo "setup: installed torch from PyTorch's CPU index"
    else
      echo "setup: installing torch from the package registry"
      "${PIP[@]}" install torch
    fi
  fi
fi

stamp="$VENV/.p2phd-installed"
want=$(cat "$ROOT/pyproject.toml" | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing p2phd and its test tools into $VENV"
  "${PIP[@]}" install -e "$ROOT[test]"
  echo "$want" > "$stamp"
fi
# A venv that reuses the system's torch has no torchrun of its own, and the one on PATH would
# run another Python: give the venv a torchrun that runs its own.
if [ ! -e "$VENV/bin/torchrun" ]; then
  printf '#!/bin/sh\nexec "%s" -m torch.distributed.run "$@"\n' "$VENV/bin/python" \
    > "$VENV/bin/torchrun"
  chmod +x "$VENV/bin/torchrun"
fi
export VENV
