#!/usr/bin/env bash
# One-script GPU check (issue 15's GPU plan). On a machine with an NVIDIA GPU and an ONNX Runtime
# build that has the CUDA provider, it checks and measures:
#   1. every ONNX session of a suite runs on CUDA (`--device cuda` fails instead of falling back;
#      results.json meta.execution_provider must say "cuda"; `-v` logs each model's provider);
#   2. GPU utilisation and memory during the run (nvidia-smi sampled every 200 ms);
#   3. a batch-size sweep of the tagger in Python onnxruntime-gpu (1..64 tweets per call), the
#      lever batching across tweets would pull;
#   4. ONNX Runtime I/O binding: step 1 runs with `io_binding = auto`, i.e. the CUDA runs that
#      hand a tensor to the next session bind (SAM's image embedding, OFA's encoder states stay
#      in device memory); the suite again
#      with `--io-binding off` must give the same predictions, and benches/io_binding.sh times
#      the SAM segmenter with binding off and on (interleaved; predictions compared byte for
#      byte; SAM ViT-B-sized tensors, SAM_DECODER=path for a real ViT-B prompt decoder);
#   5. batching across tweets in the harness: benches/batch_sweep.sh on CUDA (tagger, VE, VG at
#      --batch 1, 8, 32, 64; tweets/s per stage, predictions compared across batch sizes).
# Everything goes to $OUT (default ./gpu-check) as text files; a summary is printed.
#
# Needs: `target/release/riveg-bench` built, ONNX Runtime with CUDA: ORT_DYLIB_PATH pointing at
# the libonnxruntime.so of an `onnxruntime-gpu` wheel (or `.venv` holding onnxruntime-gpu), and
# PYTHON with onnxruntime-gpu + tokenizers for the sweep (and numpy + onnx for step 4's model). Suite: SUITE (default suites/arch.toml,
# the real-architecture fixtures; use real-size exports for meaningful utilisation figures).
# Usage: bash benches/gpu_check.sh
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu-check}"
SUITE="${SUITE:-suites/arch.toml}"
PYTHON="${PYTHON:-.venv/bin/python}"
BIN="${BIN:-target/release/riveg-bench}"
mkdir -p "$OUT"

if ! command -v nvidia-smi > /dev/null; then
  echo "gpu_check: no nvidia-smi: this machine has no NVIDIA GPU (nothing measured)" >&2
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"

# 1 + 2: the suite on CUDA, with utilisation sampled alongside.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 200 \
  > "$OUT/utilisation.csv" &
SMI=$!
/usr/bin/time -v "$BIN" -v run --suite "$SUITE" --device cuda --no-cache --out "$OUT/run" \
  --format json > "$OUT/results.stdout.json" 2> "$OUT/run.stderr"
RC=$?
kill "$SMI" 2> /dev/null
provider=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["meta"]["execution_provider"])' \
  "$OUT/run/results.json" 2> /dev/null || echo "none")
echo "run exit code: $RC, execution provider: $provider"
grep -iE "cuda|provider" "$OUT/run.stderr" | head -20
awk -F', ' '{gsub(/ %/,"",$2); if ($2+0 > max) max=$2+0; sum+=$2; n++} END {if (n) printf "GPU utilisation: mean %.1f %%, max %d %% over %d samples\n", sum/n, max, n}' \
  "$OUT/utilisation.csv"

# 3: batch-size sweep of the tagger (length-bucketed batches of real tweets' lengths).
"$PYTHON" - "$ROOT/models/arch-tagger.toml" > "$OUT/batch_sweep.txt" <<'PY'
import os, sys, time, tomllib
import numpy as np
import onnxruntime as ort
m = tomllib.load(open(sys.argv[1], "rb"))
model = os.path.join(os.path.dirname(sys.argv[1]), m["models"]["main"]["path"])
sess = ort.InferenceSession(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
print("providers:", sess.get_providers())
names = [i.name for i in sess.get_inputs()]
rng = np.random.default_rng(0)
n_tweets, seq = 1024, 32
for batch in [1, 2, 4, 8, 16, 32, 64]:
    ids = rng.integers(5, 100, size=(batch, seq), dtype=np.int64)
    feed = {"input_ids": ids}
    if "attention_mask" in names:
        feed["attention_mask"] = np.ones_like(ids)
    if "token_type_ids" in names:
        feed["token_type_ids"] = np.zeros_like(ids)
    sess.run(None, feed)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_tweets // batch):
        sess.run(None, feed)
    dt = time.perf_counter() - t0
    print(f"batch {batch:3d}: {n_tweets / dt:10.1f} tweets/s")
PY
cat "$OUT/batch_sweep.txt"

# 4: I/O binding. The suite without it: the same predictions as step 1 (which bound the CUDA
# hand-overs), then the SAM segmenter timed with binding off and on.
"$BIN" -v run --suite "$SUITE" --device cuda --no-cache --io-binding off --out "$OUT/run-unbound" \
  --format json > "$OUT/results-unbound.stdout.json" 2> "$OUT/run-unbound.stderr"
echo "run --io-binding off exit code: $?"
same=yes compared=0
for f in "$OUT"/run/predictions/*.jsonl "$OUT"/run/predictions/*/*.jsonl; do
  [ -f "$f" ] || continue
  compared=$((compared + 1))
  cmp -s "$f" "$OUT/run-unbound/${f#"$OUT/run/"}" || { same=no; echo "predictions differ: ${f#"$OUT/run/"}"; }
done
# (A difference can also be CUDA's own run-to-run nondeterminism; io_binding.sh repeats each mode.)
echo "suite predictions identical with I/O binding auto (on for CUDA) and off: $same ($compared files)"
OUT="$OUT/io-binding" DEVICE=cuda BIN="$BIN" PYTHON="$PYTHON" bash benches/io_binding.sh \
  | tee "$OUT/io_binding.txt"

# 5: batching across tweets in the harness (tagger, VE, VG), on CUDA.
DEVICE=cuda BIN="$BIN" BATCHES="${SWEEP_BATCHES:-1 8 32 64}" REPEATS="${SWEEP_REPEATS:-2}" \
  bash benches/batch_sweep.sh | tee "$OUT/batch_sweep_harness.txt"
