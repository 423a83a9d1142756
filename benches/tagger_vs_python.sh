#!/usr/bin/env bash
# Tagger throughput: `riveg-bench run` (tagger stage only, no cache) against a plain Python
# onnxruntime loop (one call per tweet, default session options) on the same model and tweets,
# with ONNX Runtime's intra-op spinning on and off and 1 or 2 intra-op threads.
#
# Model: models/arch-tagger.toml (the BERT + CRF fixture of scripts/gen_arch_models.py: real BERT
# architecture, tiny config) unless TAGGER_MANIFEST names another manifest (e.g. a BERT-base
# export from scripts/export/export_tagger.py). Tweets: Twitter-GMNER v2.0 test (3,257 tweets)
# from ../shared. Per-tweet figures are the medians the harness records in results.json (tagger
# stage, warm-up excluded) and the mean per call of the Python loop (same tokens, tokenizers +
# onnxruntime, no CRF decoding, so the Python side does less work).
#
# Usage: bash benches/tagger_vs_python.sh   (after `bash scripts/install-python-deps.sh`;
#        builds the release binary). Writes a table to stdout; figures go to benches/README.md.
#        BATCHES="1 8 32" runs the harness at each tagger batch size (`run --batch`; default 1,
#        one call per tweet like the Python loop); THREADS / SPINNINGS narrow the other loops.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MANIFEST="${TAGGER_MANIFEST:-models/arch-tagger.toml}"
GOLD="../shared/datasets/twitter-gmner/v2.0"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# BIN=target/debug/riveg-bench checks the script quickly (debug figures mean nothing).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$ROOT/target/release/riveg-bench"
fi

cat > "$TMP/suite.toml" <<EOF
name = "tagger-bench"
[data]
gold = { format = "gmner", path = "$ROOT/$GOLD", split = "test" }
[models]
tagger = "$ROOT/$MANIFEST"
[settings]
warmup = 5
[[variant]]
name = "tagger"
tagger = "onnx"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
EOF

printf '%-34s %12s %12s\n' "configuration" "ms/tweet" "tweets/s"
for batch in ${BATCHES:-1}; do
for threads in ${THREADS:-1 2}; do
  for spinning in ${SPINNINGS:-false true}; do
    out="$TMP/run-$batch-$threads-$spinning"
    "$BIN" -q run --suite "$TMP/suite.toml" --no-cache --device cpu --threads "$threads" \
      --spinning "$spinning" --batch "$batch" --out "$out" --format json > /dev/null
    # Per tweet: with batch > 1 each tweet records an equal share of its batch's time.
    .venv/bin/python - "$out/results.json" "riveg-bench b=$batch t=$threads spin=$spinning" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["variants"][0]["timings"]["tagger"]
print(f"{sys.argv[2]:<34} {t['mean_ms']:12.3f} {t['throughput_per_s']:12.1f}")
PY
  done
done
done

.venv/bin/python - "$ROOT/$MANIFEST" "$GOLD/txt/test.txt" <<'PY'
import os, sys, time, tomllib
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

manifest_path, txt = sys.argv[1], sys.argv[2]
m = tomllib.load(open(manifest_path, "rb"))
base = os.path.dirname(manifest_path)
model = os.path.join(base, m["models"]["main"]["path"])
tok = Tokenizer.from_file(os.path.join(base, m["tokenizer"]["path"]))
max_len = m["tokenizer"].get("max_length", 512)
names = [i["name"] for i in m["models"]["main"]["inputs"]]

tweets, words = [], []
for line in open(txt, encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("IMGID:"):
        continue
    if not line.strip():
        if words:
            tweets.append(words)
        words = []
        continue
    words.append(line.split("\t")[0])
if words:
    tweets.append(words)

def run(sess, tweets):
    for w in tweets:
        enc = tok.encode(w, is_pretokenized=True)
        ids = np.array([enc.ids[:max_len]], dtype=np.int64)
        feed = {"input_ids": ids}
        if "attention_mask" in names:
            feed["attention_mask"] = np.ones_like(ids)
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        sess.run(None, feed)

sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
run(sess, tweets[:5])  # warm-up, as the harness excludes its first 5 calls
t0 = time.perf_counter()
run(sess, tweets)
dt = time.perf_counter() - t0
label = "python loop, default options"
print(f"{label:<34} {1000 * dt / len(tweets):12.3f} {len(tweets) / dt:12.1f}")
PY
