#!/usr/bin/env bash
# The SAM segmenter with ONNX Runtime I/O binding off and on (`run --io-binding off|on`): the same
# suite run alternately in both modes (interleaved repeats, the order flipped every repeat),
# predictions compared byte for byte, and the segmenter's time per tweet of each (results.json
# timings, the first WARMUP calls excluded). Called by benches/gpu_check.sh on a GPU; runs on the
# CPU too (DEVICE=cpu), where binding should change nothing (~1.0x).
#
# The model (SEG_MANIFEST): by default a SAM-shaped pair generated here into $OUT/sam-shaped: the
# tensors that cross between host and device have SAM ViT-B's sizes (pixel_values 1x3x1024x1024,
# image_embeddings 1x256x64x64 = 4 MiB, masks 1x1x256x256) but the encoder is one strided
# convolution and the decoder (unless SAM_DECODER is given) a channel mean upsampled x4, so what
# binding saves (the embedding's copy to the device for every box, and back once per image) is
# not hidden under model time: it measures milliseconds saved per tweet, not the relative gain on
# the real model. SAM_DECODER=path/to/sam_decoder.onnx pairs the generated encoder with a real
# SAM ViT-B prompt decoder (box input; scripts/export/make_fullsize.py writes one, 16 MB, that a
# GPU session can carry; /work/bigmodels/arch/sam-vit-b/sam_decoder.onnx on the project machine).
# SEG_MANIFEST=/work/bigmodels/sam-vit-b.toml runs the full-size export instead (CPU only here:
# the encoder is 358 MB).
# Tweets: N (default 24) generated tweets over models/arch/photos, BOXES (default 3) boxes each.
#
# Usage: DEVICE=cuda bash benches/io_binding.sh
#   env: OUT (default ./io-binding-check) DEVICE=cuda|cpu REPEATS=3 N=24 BOXES=3 WARMUP=2
#        THREADS (run --threads; default ONNX Runtime's) BIN (default target/release/riveg-bench)
#        PYTHON (numpy + onnx; default .venv/bin/python)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/io-binding-check}"
DEVICE="${DEVICE:-cuda}"
REPEATS="${REPEATS:-3}"
PYTHON="${PYTHON:-.venv/bin/python}"
BIN="${BIN:-target/release/riveg-bench}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# Tweets, and the SAM-shaped model unless SEG_MANIFEST names one.
"$PYTHON" - "$OUT" "${N:-24}" "${BOXES:-3}" "${SEG_MANIFEST:-}" "${SAM_DECODER:-}" <<'PY' || exit 2
import hashlib, json, os, re, shutil, sys
from pathlib import Path

out, n, boxes, manifest, decoder = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
photos = sorted(p for p in Path("models/arch/photos").iterdir() if re.search(r"_(\d+)x(\d+)\.", p.name))
images = out / "images"
images.mkdir(exist_ok=True)
with open(out / "gold.jsonl", "w") as f:
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = map(int, re.search(r"_(\d+)x(\d+)\.", photo.name).groups())
        name = f"t{i}{photo.suffix}"
        if not (images / name).exists():
            shutil.copyfile(photo, images / name)
        entities, tokens = [], []
        for k in range(boxes):
            # Boxes that differ per tweet and per entity, inside the image.
            a, b = (0.05 * ((i + k) % 5), 0.07 * ((i + 2 * k) % 4))
            box = [round(a * w, 1), round(b * h, 1), round((0.55 + a) * w, 1), round((0.6 + b) * h, 1)]
            tokens.append(f"Name{k}")
            entities.append({"text": f"Name{k}", "type": "PER", "start": k, "end": k + 1,
                             "groundable": True, "boxes": [box]})
        f.write(json.dumps({"id": f"t{i}", "image": name, "tokens": tokens, "entities": entities}) + "\n")
if manifest:
    sys.exit(0)

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

model_dir = out / "sam-shaped"
model_dir.mkdir(exist_ok=True)
rng = np.random.default_rng(20261130)

def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="io_binding.sh")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = model_dir / name
    onnx.save(model, str(path))
    return path

weight = numpy_helper.from_array((rng.standard_normal((256, 3, 16, 16)) * 0.02).astype(np.float32), "w")
enc = helper.make_graph(
    [helper.make_node("Conv", ["pixel_values", "w"], ["image_embeddings"], kernel_shape=[16, 16], strides=[16, 16])],
    "sam_shaped_encoder",
    [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 1024, 1024])],
    [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, 64, 64])],
    [weight],
)
files = {"encoder": save(enc, "sam_encoder.onnx")}
if decoder:
    files["decoder"] = model_dir / "sam_decoder.onnx"
    shutil.copyfile(decoder, files["decoder"])
    decoder_outputs = [("masks", [1, 1, 256, 256]), ("iou_scores", [1, 1])]
else:
    dec = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image_embeddings"], ["gray"], axes=[1], keepdims=1),
            helper.make_node("Resize", ["gray", "", "scales"], ["up"], mode="linear"),
            # The box shifts the logits by 0 * sum: the graph takes every input, as SAM's does.
            helper.make_node("ReduceSum", ["box"], ["bsum"], keepdims=0),
            helper.make_node("Mul", ["bsum", "zero"], ["bzero"]),
            helper.make_node("Add", ["up", "bzero"], ["masks"]),
        ],
        "sam_shaped_decoder",
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, 64, 64]),
         helper.make_tensor_value_info("box", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT, [1, 1, 256, 256])],
        [numpy_helper.from_array(np.array([1, 1, 4, 4], dtype=np.float32), "scales"),
         numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")],
    )
    files["decoder"] = save(dec, "sam_decoder.onnx")
    decoder_outputs = [("masks", [1, 1, 256, 256])]
sha = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
tensor = lambda kind, name, shape: f'[[models.{{role}}.{kind}]]\nname = "{name}"\ndtype = "float32"\nshape = {shape}\n'
text = f'''# Generated by benches/io_binding.sh: SAM ViT-B's tensor sizes, not SAM (see the script).
name = "sam-shaped"
stage = "segmenter"

[models.encoder]
path = "sam_encoder.onnx"
sha256 = "{sha["encoder"]}"

{tensor("inputs", "pixel_values", [1, 3, 1024, 1024]).format(role="encoder")}
{tensor("outputs", "image_embeddings", [1, 256, 64, 64]).format(role="encoder")}
[models.decoder]
path = "sam_decoder.onnx"
sha256 = "{sha["decoder"]}"

{tensor("inputs", "image_embeddings", [1, 256, 64, 64]).format(role="decoder")}
{tensor("inputs", "box", [1, 4]).format(role="decoder")}
''' + "".join(tensor("outputs", name, shape).format(role="decoder") + "\n" for name, shape in decoder_outputs) + '''
[preprocess]
image_size = [1024, 1024]
resize = "longest_side"
filter = "bilinear"
rescale = 0.00392156862745098
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
'''
(model_dir / "sam-shaped.toml").write_text(text)
PY
MANIFEST="${SEG_MANIFEST:-$OUT/sam-shaped/sam-shaped.toml}"
MANIFEST="$(cd "$(dirname "$MANIFEST")" && pwd)/$(basename "$MANIFEST")"

cat > "$OUT/suite.toml" <<EOF
# Generated by benches/io_binding.sh: only the segmenter is a model (gold entities and boxes).
name = "io-binding"
[data]
gold = { format = "jsonl", path = "$OUT/gold.jsonl" }
images = "$OUT/images"
[models]
segmenter = "$MANIFEST"
[settings]
warmup = ${WARMUP:-2}
on_error = "fail"
[[variant]]
name = "sam"
knowledge = "off"
tagger = "oracle"
reformulator = "off"
entailer = "oracle"
grounder = "oracle"
segmenter = "onnx"
EOF

echo "io binding: $MANIFEST on $DEVICE, ${N:-24} tweets x ${BOXES:-3} boxes, $REPEATS interleaved repeats"
run_mode() { # mode repeat
  local dir="$OUT/run-$1-$2"
  rm -rf "$dir"
  "$BIN" -v run --suite "$OUT/suite.toml" --no-cache --device "$DEVICE" --io-binding "$1" \
    ${THREADS:+--threads "$THREADS"} --out "$dir" --format json > "$dir.json" 2> "$dir.log" || {
    echo "run --io-binding $1 failed (exit $?); see $dir.log:" >&2
    tail -5 "$dir.log" >&2
    return 1
  }
  grep -m1 -E "sam_decoder.onnx: running on" "$dir.log" | sed "s/^/  [$1] /"
}
FAILED=0
for ((r = 0; r < REPEATS; r++)); do
  if ((r % 2 == 0)); then order=(off on); else order=(on off); fi
  for mode in "${order[@]}"; do run_mode "$mode" "$r" || FAILED=1; done
done
[ "$FAILED" = 0 ] || exit 1

"$PYTHON" - "$OUT" "$REPEATS" <<'PY'
import json, statistics, sys
from pathlib import Path

out, repeats = Path(sys.argv[1]), int(sys.argv[2])
ms = {"off": [], "on": []}
reference = (out / "run-off-0/predictions/sam.jsonl").read_bytes()
same = True
for mode in ms:
    for r in range(repeats):
        run = out / f"run-{mode}-{r}"
        t = json.loads((run / "results.json").read_text())["variants"][0]["timings"]["segmenter"]
        ms[mode].append(t["mean_ms"])
        count = t["count"]
        if (run / "predictions/sam.jsonl").read_bytes() != reference:
            same = False
            print(f"DIFFERENT predictions: {run} vs run-off-0")
for mode, v in ms.items():
    print(f"io-binding {mode:<3}: segmenter {statistics.median(v):9.3f} ms/tweet (median of {len(v)}; "
          f"runs {', '.join(f'{x:.3f}' for x in v)}; {count} timed tweets each)")
off, on = statistics.median(ms["off"]), statistics.median(ms["on"])
print(f"off/on time ratio {off / on:.3f} (above 1: binding faster); saved {off - on:.3f} ms/tweet")
print("predictions identical in every run:", "yes" if same else "NO")
sys.exit(0 if same else 1)
PY
