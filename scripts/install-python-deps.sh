#!/usr/bin/env bash
# Installs the Python side of riveg-bench into ./.venv (created when missing):
#   - onnxruntime: its wheel carries libonnxruntime.so, which the `ort` crate loads at run time
#     (load-dynamic; see src/runtime/env.rs for how the path is found);
#   - onnx, numpy, tokenizers: scripts/gen_tiny_models.py (the tiny test models);
#   - seqeval, pycocotools: reference scorers the tests compare against.
# Idempotent: when the pinned versions are already there it only checks and prints the path.
# Usage: bash scripts/install-python-deps.sh      (from anywhere; works on the repository root)
# Env:   PYTHON=python3.11 to pick the interpreter used to create the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
PINS=(
  "onnxruntime==1.31.1"
  "onnx==1.23.2"
  "numpy"
  "seqeval==1.2.2"
  "pycocotools==2.0.11"
  "tokenizers==0.23.3"
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $PYTHON" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: $PYTHON -m venv failed; Python's venv module is missing." >&2
    echo "  hint: on Debian/Ubuntu: sudo apt-get install python3-venv (or set PYTHON=python3.X)" >&2
    exit 2
  fi
fi

# Quick path: every pin satisfied already (pip's resolver is slow even when nothing changes).
if ! "$VENV/bin/python" - "${PINS[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, _, want = pin.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want:
        sys.exit(1)
EOF
then
  echo "installing ${PINS[*]} into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
fi

LIB="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | head -n 1 || true)"
if [ -z "$LIB" ]; then
  echo "error: onnxruntime is installed but no libonnxruntime.so* was found under $VENV" >&2
  exit 1
fi
echo "ONNX Runtime library: $LIB"
echo "(found automatically by riveg-bench; or export ORT_DYLIB_PATH=$LIB)"
