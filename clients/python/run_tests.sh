#!/usr/bin/env bash
# Runs the Python client's test suite in a virtualenv.
#
#   clients/python/run_tests.sh [PYTEST ARGS...]
#
# CREDPOOL_VENV  the virtualenv (created when absent, reused otherwise); default
#                target/python-venv, relative to the repository root
# CREDPOOL_BIN   the credpool binary; without it the integration tests are skipped
#
# Exits with pytest's status (non-zero on any failure); exits 1 with one line when python3
# is missing or too old.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v python3 >/dev/null 2>&1; then
    echo "run_tests.sh: python3 is missing: install Python 3.9 or newer to run the Python client's tests" >&2
    exit 1
fi
if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
    echo "run_tests.sh: python3 is $(python3 -V 2>&1 | cut -d' ' -f2), and the Python client needs 3.9 or newer" >&2
    exit 1
fi

venv="${CREDPOOL_VENV:-target/python-venv}"
case "$venv" in
    /*) ;;
    *) venv="$root/$venv" ;;
esac

if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >/dev/null; then
        echo "run_tests.sh: cannot create a virtualenv at $venv (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

# Install (editable, with the test extras) unless this pyproject.toml is already installed.
stamp="$venv/.credpool-client-stamp"
want="$(cat "$here/pyproject.toml" | cksum) $here"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test]"
    printf '%s' "$want" >"$stamp"
fi

cd "$root"
export PYTHONDONTWRITEBYTECODE=1
if [ -n "${CREDPOOL_BIN:-}" ]; then
    # Relative to the repository root, like the rest of this script.
    case "$CREDPOOL_BIN" in
        /*) ;;
        *) CREDPOOL_BIN="$root/$CREDPOOL_BIN" ;;
    esac
    export CREDPOOL_BIN
fi
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" "$here/tests"
