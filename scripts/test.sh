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

# Browser tests drive Debian's chromium (never a browser downloaded by Playwright); SDK tests drive Segment's
# JavaScript SDKs from npm (tests/js, at the versions of its package-lock.json) in it and under Node.js.
# Each is installed when missing; with CI=true a failed install fails the run, elsewhere the tests needing
# it skip with a reason.
CI="${CI:-}"
in_ci() {
    case "${CI,,}" in
        1 | true | yes) return 0 ;;
        *) return 1 ;;
    esac
}

# apt_install PACKAGE COMMAND: install Debian's PACKAGE unless COMMAND is already there.
apt_install() {
    local package="$1" command="$2"
    command -v "$command" >/dev/null 2>&1 && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "cannot install $package: not root and no sudo" >&2
            return 1
        fi
        sudo="sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "cannot install $package: no apt-get" >&2; return 1; }
    local log
    log="$(mktemp)"
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" 2>&1 | tee "$log"; then
        rm -f "$log"
        command -v "$command" >/dev/null 2>&1 && return 0
        return 1
    fi
    # Only a missing package list warrants an update (a fresh container has none).
    if grep -qE "Unable to locate package|has no installation candidate|Package .* is not available" "$log"; then
        rm -f "$log"
        $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" && command -v "$command" >/dev/null 2>&1
        return
    fi
    rm -f "$log"
    return 1
}

ensure_javascript_sdks() {
    apt_install npm npm || return 1  # Debian's npm brings Node.js
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
}

if ! apt_install chromium /usr/bin/chromium; then
    if in_ci; then
        echo "ERROR: CI=true and Debian's chromium could not be installed (/usr/bin/chromium); browser tests must run" >&2
        exit 1
    fi
    echo "WARNING: Debian's chromium could not be installed (/usr/bin/chromium missing); browser tests will skip" >&2
fi
if ! ensure_javascript_sdks; then
    if in_ci; then
        echo "ERROR: CI=true and Segment's JavaScript SDKs could not be installed (npm ci in tests/js); their tests must run" >&2
        exit 1
    fi
    echo "WARNING: Segment's JavaScript SDKs could not be installed (npm ci in tests/js); their tests will skip" >&2
fi

exec .venv/bin/python -m pytest "$@"
