#!/usr/bin/env bash
# The test command: set up .venv if needed, lint, then the test suite on the CPU (the slow
# end-to-end tests only when asked: `bash tests/run.sh -m "slow or not slow"`, as CI runs it).
# Extra arguments go to pytest.
# The tools run through the venv's interpreter: where the system Python already has them,
# the venv reuses those packages and pip puts no scripts into .venv/bin.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
cd "$ROOT"
PY="$VENV/bin/python"
"$PY" -m ruff check p2phd tests benchmarks
"$PY" -m ruff format --check --quiet p2phd tests benchmarks
"$PY" -m mypy --no-error-summary
"$PY" -m pytest -q "$@"
