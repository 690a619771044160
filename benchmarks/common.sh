# Sourced by the benchmark scripts: build Bonsai, make the ignored venv, and have the Python packages
# named in $1 (import names) installed from PyPI as $2 (pip names). Sets BONSAI and OUT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=benchmarks/out
mkdir -p "$OUT"
swift build -c release >/dev/null
BONSAI=.build/release/bonsai
if [ ! -x benchmarks/.venv/bin/python ]; then
    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -q --upgrade pip
fi
benchmarks/.venv/bin/python -c "import $1" 2>/dev/null || benchmarks/.venv/bin/pip install -q $2
