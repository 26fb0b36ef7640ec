#!/usr/bin/env bash
# Install the test dependencies into .venv and run every check: lint, types, tests.
# PostgreSQL tests use PARCOURS_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432/test);
# with CI=true they must run, elsewhere they skip with a reason when no server answers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
