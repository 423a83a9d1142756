#!/usr/bin/env bash
# Full-size real-architecture stages on this CPU: `riveg-bench run` (a suite where only the stage
# under test is a model; upstream stages are gold oracles or off) against a plain Python
# onnxruntime loop on identical inputs (same tokens, same Pillow preprocessing, one call per item,
# the same ORT intra-op threads and spinning, graph optimisation ALL in both). Per-item ms (mean,
# p50; the first WARMUP calls excluded on both sides), the throughput ratio harness/python, and
# each whole process's wall and CPU time. Repeats are interleaved (harness, python, next stage,
# ..., next repeat) so that load from other users of a shared machine hits both sides alike.
#
# Models: the full-size random-weight exports of scripts/export/make_fullsize.py under BIG
# (default /work/bigmodels: bert-base-tagger, clip-b32-ve, owlvit-b32, sam-vit-b).
# Tweets: the first N of Twitter-GMNER v2.0 test (../shared), images: models/arch/photos/ (there
# are no real photos in the repository) linked as <id>.<ext>, cycling, gold boxes rescaled to them.
#
# Usage: bash benches/realsize_vs_python.sh [STAGE...]     (tagger entailer grounder segmenter)
#   env: BIG=/work/bigmodels N=200 (tweets prepared, and per stage unless set below) REPEATS=3
#        N_TAGGER N_ENTAILER N_GROUNDER N_SEGMENTER (per-stage tweet counts; defaults 200 100 30 12:
#        OWL-ViT at 768 px and SAM at 1024 px take 0.5-5 s per image on 2 cores)
#        THREADS=<cores> SPINNING=true (Python onnxruntime's defaults) WARMUP=2
#        KEEP=file.json (every figure of every repeat)
#        HARNESS_DEFAULTS=1 (the harness at its own defaults: no --threads/--spinning, so spinning off
#           and batch 32, against Python at THREADS/SPINNING: each side as shipped)
#        BATCH=N (the harness's tweets per tagger call and per VE/VG run: run --batch N
#           --image-batch N; default the suite's, 32 and 8; the
#           Python loop always makes one call per tweet)
#        TAGGER_MODEL=xlmr-large-tagger (the tagger's manifest under BIG; default bert-base-tagger)
#        BIN=path/to/riveg-bench (default: builds target/release/riveg-bench)
#        PY=python with onnxruntime, tokenizers, numpy and Pillow (default /work/venv-export/bin/python,
#           the export venv: onnxruntime 1.31.1 as in .venv, whose library the harness loads)
# Figures go to benches/README.md ("Full-size models on this CPU").
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIG="${BIG:-/work/bigmodels}"
PY="${PY:-/work/venv-export/bin/python}"
GOLD_DIR="../shared/datasets/twitter-gmner/v2.0"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(tagger entailer grounder segmenter)
declare -A MANIFEST=([tagger]="${TAGGER_MODEL:-bert-base-tagger}" [entailer]=clip-b32-ve [grounder]=owlvit-b32 [segmenter]=sam-vit-b)
ARGS=()
for s in "${STAGES[@]}"; do
  m="$BIG/${MANIFEST[$s]:?unknown stage $s (tagger, entailer, grounder, segmenter)}.toml"
  [ -f "$m" ] || { echo "$m: missing; build it with scripts/export/make_fullsize.py (models/README.md)" >&2; exit 2; }
  ARGS+=(--manifest "$s=$m")
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$ROOT/target/release/riveg-bench"
fi
"$BIN" -q import gmner --dataset "$GOLD_DIR" --split test -o "$WORK/test.jsonl"
"$PY" benches/realsize_vs_python.py prepare --gold "$WORK/test.jsonl" --xml "$GOLD_DIR/xml" \
  --n "${N:-200}" --out "$WORK"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
"$PY" benches/realsize_vs_python.py bench --work "$WORK" --bin "$BIN" --stages "${STAGES[@]}" "${ARGS[@]}" \
  --n "${N:-200}" --tweets "tagger=${N_TAGGER:-${N:-200}}" --tweets "entailer=${N_ENTAILER:-100}" \
  --tweets "grounder=${N_GROUNDER:-30}" --tweets "segmenter=${N_SEGMENTER:-12}" --repeats "${REPEATS:-3}" --threads "${THREADS:-$(nproc)}" \
  --spinning "${SPINNING:-true}" --warmup "${WARMUP:-2}" ${KEEP:+--keep "$KEEP"} ${BATCH:+--batch "$BATCH"} ${HARNESS_DEFAULTS:+--harness-defaults}
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
