#!/usr/bin/env bash
# The segmenter's per-tweet work outside the models (issue 15): `cargo bench --bench segmenter`
# against the same work in Python (Pillow decode, transformers' SamProcessor preprocessing with
# the box transform, SamImageProcessor.post_process_masks, pycocotools RLE encode; see
# benches/segmenter_vs_python.py), on the same photos, boxes and mask logits, in one run so the
# ratios compare like with like.
#
# Photos: models/arch/photos/wide_150x100.jpg and scikit-learn's china.jpg / flower.jpg
# (640 x 427) from .venv when present.
#
# Environment:
#   SEGMENTER_PYTHON      the Python for the reference side; needs torch, transformers, Pillow,
#                         numpy and pycocotools (default .venv/bin/python; on the project machine
#                         /work/venv-export/bin/python has torch 2.5.1 + transformers 4.46.3, and
#                         pycocotools is then borrowed from .venv, same Python version)
#   SEGMENTER_PY_THREADS  torch intra-op threads (default 1, as the Rust side)
#   SKIP_CARGO=1          reuse the criterion results already in target/criterion/segmenter
#
# Usage: bash benches/segmenter_vs_python.sh   (builds the bench in release the first time).
# Prints a table (median per benchmark, Python / Rust ratio) and checks that both sides' masks
# have the same areas; figures go to benches/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${SEGMENTER_PYTHON:-.venv/bin/python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

PHOTOS=(models/arch/photos/wide_150x100.jpg)
for images in .venv/lib/python3*/site-packages/sklearn/datasets/images; do
  [ -d "$images" ] && PHOTOS+=("$images/china.jpg" "$images/flower.jpg")
done

# pycocotools from .venv when the reference Python lacks it (compiled for the same Python).
if ! "$PYTHON" -c "import pycocotools" 2>/dev/null; then
  for pkg in .venv/lib/python3*/site-packages/pycocotools; do
    mkdir -p "$TMP/shim" && ln -s "$ROOT/$pkg" "$TMP/shim/pycocotools"
  done
  export PYTHONPATH="$TMP/shim${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ -z "${SKIP_CARGO:-}" ]; then
  cargo bench --quiet --bench segmenter 2> "$TMP/rust.err" > "$TMP/rust.out" || {
    cat "$TMP/rust.err" >&2
    exit 1
  }
  grep '^areas/' "$TMP/rust.err" > "$TMP/rust.areas" || true
fi
"$PYTHON" benches/segmenter_vs_python.py "${PHOTOS[@]}" > "$TMP/python.json"

"$PYTHON" - "$ROOT/target/criterion/segmenter" "$TMP/python.json" "$TMP/rust.areas" <<'PY'
import json, os, sys

crit, py_file, areas_file = sys.argv[1:4]
python = json.load(open(py_file))
rust = {}
for root, _, files in os.walk(crit):
    if os.path.basename(root) == "new" and "benchmark.json" in files:
        full_id = json.load(open(os.path.join(root, "benchmark.json")))["full_id"]
        median_ns = json.load(open(os.path.join(root, "estimates.json")))["median"]["point_estimate"]
        rust[full_id.removeprefix("segmenter/")] = median_ns / 1000
print(f"{'benchmark':<36} {'Rust µs':>10} {'Python µs':>11} {'Python/Rust':>12}")
for key in sorted(k for k in python if "/" in k and not k.startswith("areas/")):
    r, p = rust.get(key), python[key]
    ratio = f"{p / r:12.1f}" if r else f"{'n/a':>12}"
    print(f"{key:<36} {r if r else float('nan'):10.1f} {p:11.1f} {ratio}")
print("python:", json.dumps(python["versions"]))
if os.path.exists(areas_file):
    for line in open(areas_file):
        key, value = line.strip().split(": ", 1)
        same = json.loads(value) == python.get(key)
        print(f"{key}: Rust {value}, Python {python.get(key)} -> {'same' if same else 'DIFFERENT'}")
PY
