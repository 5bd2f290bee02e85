#!/usr/bin/env bash
# The test command (CI runs this): set up .venv if needed, lint, then the whole suite on CPU.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"` for the quick part.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
cd "$ROOT"
"$VENV/bin/ruff" check p2phd tests benchmarks
"$VENV/bin/ruff" format --check --quiet p2phd tests benchmarks
"$VENV/bin/mypy" --no-error-summary
"$VENV/bin/python" -m pytest -q "$@"
