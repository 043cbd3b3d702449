# Sourced by scripts/run and scripts/test: make .venv and install the requirements into it.
# Re-installs only when a requirements file changed since the last install.
set -euo pipefail
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=".venv/.installed-$(cat "$1" requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -r "$1"
  rm -f .venv/.installed-* && touch "$stamp"
fi
