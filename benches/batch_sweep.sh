#!/usr/bin/env bash
# Batching across tweets, measured in the harness itself (issue 15): the same tweets through
# `riveg-bench run` at several batch sizes (`--batch B --image-batch B`), with the tagger, the
# entailer (VE) and the grounder (VG) on ONNX (reformulation, segmentation off), printing each
# stage's tweets/s from results.json and whether the predictions are the same at every batch
# size. The VE and VG
# models batch across tweets only when their manifest has an `image_index` input (the arch
# fixtures and exports from scripts/export do); others run one tweet per call at any batch.
#
# Tweets: the first N of Twitter-GMNER v2.0 test (../shared; without it, e.g. on a GPU machine,
# the arch suite's gold tweets repeated under new ids), each tweet's image a link to one of
# models/arch/photos/ (cycling; the repository has no real photos). Gold boxes are dropped: the
# scores of random-weight models mean nothing here, only the speed does.
#
# env: DEVICE=cpu|cuda (default cpu; cuda fails rather than falling back)
#      N=256 tweets, BATCHES="1 8 32", REPEATS=1 (runs per batch size, interleaved)
#      TAGGER, ENTAILER, GROUNDER: manifests (default models/arch-{tagger,clip,owlvit}.toml, the
#        tiny real-architecture fixtures, where per-call overhead dominates; pass full-size
#        exports, e.g. /work/bigmodels/clip-b32-ve.toml re-exported with image_index, for model-
#        bound figures)
#      BIN (default: builds target/release/riveg-bench), PYTHON (default python3; stdlib only)
#      GOLD_DIR (default ../shared/datasets/twitter-gmner/v2.0), OUT (default: a temporary folder,
#        deleted)
# Usage: bash benches/batch_sweep.sh        (gpu_check.sh runs it with DEVICE=cuda)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEVICE="${DEVICE:-cpu}"
N="${N:-256}"
BATCHES="${BATCHES:-1 8 32}"
REPEATS="${REPEATS:-1}"
TAGGER="${TAGGER:-$ROOT/models/arch-tagger.toml}"
ENTAILER="${ENTAILER:-$ROOT/models/arch-clip.toml}"
GROUNDER="${GROUNDER:-$ROOT/models/arch-owlvit.toml}"
PYTHON="${PYTHON:-python3}"
GOLD_DIR="${GOLD_DIR:-$ROOT/../shared/datasets/twitter-gmner/v2.0}"
for m in "$TAGGER" "$ENTAILER" "$GROUNDER"; do
  [ -f "$m" ] || { echo "batch_sweep: $m: no such manifest" >&2; exit 2; }
done
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$ROOT/target/release/riveg-bench"
fi
if [ -z "${OUT:-}" ]; then
  OUT="$(mktemp -d)"
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/images"

if [ -d "$GOLD_DIR" ]; then
  "$BIN" -q import gmner --dataset "$GOLD_DIR" --split test -o "$OUT/test.jsonl"
else
  # A machine without ../shared (a GPU machine gets the repository only): the arch suite's gold
  # tweets, repeated under new ids up to N.
  echo "batch_sweep: no $GOLD_DIR; using models/arch/suite/gold.jsonl, repeated" >&2
  cp "$ROOT/models/arch/suite/gold.jsonl" "$OUT/test.jsonl"
fi
"$PYTHON" - "$OUT" "$N" "$ROOT/models/arch/photos" <<'PY'
import json, sys
from pathlib import Path
out, n, photos = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
photos = sorted(p for p in photos.iterdir() if p.suffix in (".png", ".jpg"))
lines = (out / "test.jsonl").read_text(encoding="utf-8").splitlines()
header = [l for l in lines if "header" in json.loads(l)]
source = [json.loads(l) for l in lines if "header" not in json.loads(l)]
tweets = []
while len(tweets) < n and source:
    k = len(tweets) // len(source)
    for t in source[: n - len(tweets)]:
        tweets.append(dict(t, id=t["id"] if k == 0 else f"{t['id']}r{k}"))
for i, t in enumerate(tweets):
    photo = photos[i % len(photos)]
    t["image"] = f"{t['id']}{photo.suffix}"
    link = out / "images" / t["image"]
    if not link.exists():
        link.symlink_to(photo)
    for e in t["entities"]:
        e["boxes"], e["groundable"] = [], False
        e.pop("masks", None)
(out / "gold.jsonl").write_text("\n".join(header + [json.dumps(t) for t in tweets]) + "\n", encoding="utf-8")
PY
cat > "$OUT/suite.toml" <<EOF
name = "batch-sweep"
[data]
gold = { format = "jsonl", path = "$OUT/gold.jsonl" }
images = "$OUT/images"
[models]
tagger = "$TAGGER"
entailer = "$ENTAILER"
grounder = "$GROUNDER"
[settings]
warmup = 2
on_error = "fail"
[[variant]]
name = "sweep"
knowledge = "off"
tagger = "onnx"
reformulator = "off"
entailer = "onnx"
grounder = "onnx"
segmenter = "off"
EOF

echo "batch_sweep: $N tweets, device $DEVICE, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "models: $TAGGER, $ENTAILER, $GROUNDER"
for r in $(seq 1 "$REPEATS"); do
  for b in $BATCHES; do
    "$BIN" -q run --suite "$OUT/suite.toml" --no-cache --device "$DEVICE" --batch "$b" --image-batch "$b" \
      --out "$OUT/run-$b-$r" --format json > /dev/null 2> "$OUT/run-$b-$r.stderr" \
      || { echo "batch_sweep: run at batch $b failed:" >&2; tail -20 "$OUT/run-$b-$r.stderr" >&2; exit 1; }
  done
done
"$PYTHON" - "$OUT" "$REPEATS" $BATCHES <<'PY'
import hashlib, json, statistics, sys
from pathlib import Path
out, repeats, batches = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
stages = ("tagger", "entailer", "grounder", "pipeline")
print("| batch | " + " | ".join(f"{s} tweets/s" for s in stages) + " | predictions |")
print("| ---: | " + " | ".join("---:" for _ in stages) + " | --- |")
first = None
for b in batches:
    rates = {s: [] for s in stages}
    digests = set()
    for r in range(1, repeats + 1):
        run = out / f"run-{b}-{r}"
        v = json.load(open(run / "results.json"))["variants"][0]
        for s in stages:
            t = v["timings"].get(s) or {}
            if t.get("throughput_per_s"):
                rates[s].append(t["throughput_per_s"])
        h = hashlib.sha256()
        for f in sorted(run.glob("predictions/**/*.jsonl")):
            h.update(f.read_bytes())
        digests.add(h.hexdigest())
    digest = next(iter(digests))
    first = first or digest
    if len(digests) != 1:
        same = "differ between repeats"
    else:
        same = ("same as" if digest == first else "DIFFER from") + f" batch {batches[0]}"
    cells = [f"{statistics.median(rates[s]):.1f}" if rates[s] else "n/a" for s in stages]
    print(f"| {b} | " + " | ".join(cells) + f" | {same} |")
PY
