#!/usr/bin/env bash
# Create (or refresh) the peer's virtual environment, .venv-quix/ at the repository root,
# from bench/peer_quix/requirements.txt, with `python3 -m venv` and pip from PyPI.
#
# Idempotent: a stamp file inside the venv holds the hash of the requirements and of the
# interpreter; when it matches, nothing is done. Otherwise the venv is rebuilt from scratch
# (--clear), so a pin that was removed does not linger, and the stamp is written last: an
# interrupted install is redone on the next call.
#
#   bench/peer_quix/setup_venv.sh            # PYTHON=python3.11 to pick the interpreter
#   PEER_QUIX_VENV=/elsewhere bench/peer_quix/setup_venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PEER_QUIX_VENV:-$root/.venv-quix}"
requirements="$here/requirements.txt"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"

interpreter="$("$python" -c 'import sys; print(sys.version)')"
wanted="$( { cat "$requirements"; echo "$interpreter"; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    echo "$venv is up to date"
    exit 0
fi

started=$SECONDS
echo "creating $venv (Python ${interpreter%% *})"
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
"$venv/bin/python" -m pip check --disable-pip-version-check
echo "$wanted" > "$stamp"
echo "$venv ready in $((SECONDS - started)) s"
