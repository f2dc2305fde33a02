#!/usr/bin/env bash
# Sets up the bench's virtualenv (target/python-bench-venv under the repo root, or
# $CREDPOOL_BENCH_VENV) with the credpool client (editable), litellm and redis, then runs
# bench.py with the arguments given:
#
#   clients/python/bench/run.sh --runs 3 --json
#
# Needs: python3 (>= 3.9) with venv, target/release/credpool (cargo build --release -p
# credpool-cli), and redis-server on PATH (Debian: apt-get install -y redis-server).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${CREDPOOL_BENCH_VENV:-$root/target/python-bench-venv}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "run.sh: $python not found (set PYTHON=...)" >&2
    exit 2
fi

# (Re)install when the venv is new or the requirements changed.
stamp="$venv/.credpool-bench-installed"
want="credpool(editable) litellm redis"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$root/clients/python" litellm redis
    echo "$want" > "$stamp"
fi

cd "$root"
exec "$venv/bin/python" "$here/bench.py" --repo "$root" "$@"
