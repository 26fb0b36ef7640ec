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

# Browser tests drive Debian's chromium (never a browser downloaded by Playwright). Install it when missing;
# with CI=true a failed install fails the run, elsewhere the browser tests skip with a reason.
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "cannot install chromium: not root and no sudo" >&2
            return 1
        fi
        sudo="sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "cannot install chromium: no apt-get" >&2; return 1; }
    local log
    log="$(mktemp)"
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium 2>&1 | tee "$log"; then
        rm -f "$log"
        [ -x /usr/bin/chromium ] && return 0
        return 1
    fi
    # Only a missing package list warrants an update (a fresh container has none).
    if grep -qE "Unable to locate package|has no installation candidate|Package .* is not available" "$log"; then
        rm -f "$log"
        $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium && [ -x /usr/bin/chromium ]
        return
    fi
    rm -f "$log"
    return 1
}
CI="${CI:-}"
if ! ensure_chromium; then
    case "${CI,,}" in
        1 | true | yes)
            echo "ERROR: CI=true and Debian's chromium could not be installed (/usr/bin/chromium); browser tests must run" >&2
            exit 1
            ;;
        *)
            echo "WARNING: Debian's chromium could not be installed (/usr/bin/chromium missing); browser tests will skip" >&2
            ;;
    esac
fi

exec .venv/bin/python -m pytest "$@"
