#!/usr/bin/env bash
# LLM requests in flight across tweets (issue 15): the pipeline `tagger -> LLM reformulation`
# against the loopback mock LLM answering every request after DELAY_MS (default 50 ms, a stand-in
# for a real endpoint's latency), with [llm] max_concurrency 1 and 8. With the window of tweets
# sharing one bounded pool, concurrency 8 keeps 8 requests in flight across tweets, not only
# within one tweet. Tweets: shard 1/16 of Twitter-GMNER v2.0 test (the count is printed); tagger: the
# BERT + CRF fixture (models/arch-tagger.toml). No cache, so every run asks every prompt.
#
# Usage: bash benches/llm_concurrency.sh   (BIN=target/release/riveg-bench to skip the build;
#        DELAY_MS, CONCURRENCY="1 8", BATCH=32 to vary). Prints tweets/s per configuration.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GOLD="../shared/datasets/twitter-gmner/v2.0"
DELAY_MS="${DELAY_MS:-50}"
TMP="$(mktemp -d)"
MOCK_PID=""
cleanup() {
  if [ -n "$MOCK_PID" ]; then kill "$MOCK_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$ROOT/target/release/riveg-bench"
fi

"$BIN" mock-llm --port 0 --behaviour "delay:$DELAY_MS" > "$TMP/mock.log" 2>&1 &
MOCK_PID=$!
for _ in $(seq 50); do
  URL="$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$TMP/mock.log" || true)"
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { echo "mock LLM did not start: $(cat "$TMP/mock.log")" >&2; exit 1; }

printf '%-40s %10s %10s %12s\n' "configuration" "tweets" "seconds" "tweets/s"
for conc in ${CONCURRENCY:-1 8}; do
  cat > "$TMP/suite-$conc.toml" <<TOML
name = "llm-concurrency"
[data]
gold = { format = "gmner", path = "$ROOT/$GOLD", split = "test" }
[models]
tagger = "$ROOT/models/arch-tagger.toml"
[llm]
base_url = "$URL"
model = "mock"
prompt = "reformulate-v1"
timeout_ms = 10000
max_retries = 0
max_concurrency = $conc
[settings]
warmup = 0
[[variant]]
name = "tagger-llm"
tagger = "onnx"
reformulator = "llm"
entailer = "off"
grounder = "off"
segmenter = "off"
TOML
  start=$(date +%s.%N)
  "$BIN" -q run --suite "$TMP/suite-$conc.toml" --no-cache --device cpu --batch "${BATCH:-32}" \
    --shard 1/16 --out "$TMP/run-$conc" --format json > /dev/null
  end=$(date +%s.%N)
  .venv/bin/python - "$TMP/run-$conc/results.json" "$start" "$end" \
    "max_concurrency=$conc delay=${DELAY_MS}ms" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = r["variants"][0]
tweets = v["tweets"]
pipe = v["timings"]["pipeline"]
wall = float(sys.argv[3]) - float(sys.argv[2])
# tweets/s over the process's wall time (start-up included) and over the pipeline rows.
print(f"{sys.argv[4]:<40} {tweets:10d} {wall:10.2f} {tweets / wall:12.1f}"
      f"   (pipeline rows: {pipe['throughput_per_s']:.1f}/s)")
PY
done
