#!/usr/bin/env python3
"""Dynamic int8 quantisation of a manifest's ONNX graphs: a CPU speed lever for the transformer
stages (taggers above all), written as a new manifest beside the original.

    .venv/bin/python scripts/export/quantize_dynamic.py IN.toml OUT.toml [--models main ...]
        [--per-channel] [--reduce-range]

Each graph named by `--models` (default: every `[models.<role>]` of IN) goes through
`onnxruntime.quantization.quantize_dynamic` (weights int8, activations quantised per call;
MatMul -> MatMulInteger/DynamicQuantizeMatMul, which use VNNI/AVX-512 where the CPU has them).
The quantised graph is written beside OUT as `<stem>.int8.onnx` (one file: no external data),
and OUT is IN's text with:
  - `name` suffixed with `-int8`;
  - the quantised graphs' `path`/`sha256` replaced (their `external_data*` keys dropped);
  - every other `path` made relative to OUT's folder (tokenizer, CRF, unquantised graphs), so OUT
    may live in another folder than IN;
  - a header saying where it came from (IN's name and graph sha256, onnxruntime's version, the
    options) and that its numbers differ from the FP32 model's.

A quantised model is a different model: its logits differ from the FP32 ones and so can its
labels (benches/README.md, "Full-size models on this CPU", measures how often on the full-size
BERT-base tagger). Score it as its own system; never mix its cached outputs with the FP32
model's (the graph's sha256 is in every cache key, so riveg-bench cannot).

Deterministic: the same IN and onnxruntime version give the same bytes (tested by
tests/it/quantized.rs, which also runs the result through riveg-bench).
"""

import argparse
import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fail(msg, hint):
    print(f"error: {msg}\n  hint: {hint}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", nargs="*", help="roles to quantise (default: all)")
    ap.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI)")
    a = ap.parse_args()

    try:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        fail(f"cannot import onnxruntime.quantization ({e})", "run it with .venv/bin/python (bash scripts/install-python-deps.sh)")

    src = a.manifest.resolve()
    out = a.out.resolve()
    if not src.is_file():
        fail(f"{src}: no such manifest", "give the path of a riveg-bench model manifest (*.toml)")
    if out == src:
        fail(f"{out}: the output would overwrite the input manifest", "give another OUT.toml")
    text = src.read_text(encoding="utf-8")
    try:
        manifest = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{src}: not valid TOML ({e})", "fix the manifest first (riveg-bench checks it on load)")
    models = manifest.get("models", {})
    roles = a.models or sorted(models)
    for role in roles:
        if role not in models:
            fail(f"{src}: no [models.{role}]", f"roles in this manifest: {', '.join(sorted(models)) or 'none'}")
    out.parent.mkdir(parents=True, exist_ok=True)

    new = {}
    for role in roles:
        graph = src.parent / models[role]["path"]
        target = out.parent / f"{out.stem}.{role}.int8.onnx"
        quantize_dynamic(
            str(graph),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=a.per_channel,
            reduce_range=a.reduce_range,
            use_external_data_format=False,
        )
        new[role] = (target.name, sha256(target), models[role].get("sha256", "?"))
        print(f"{role}: {graph} -> {target} ({target.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)

    # Line-wise rewrite so that IN's comments and layout survive (no TOML writer in the venv).
    section = None
    lines = []
    key = re.compile(r'^(\s*)(path|sha256|external_data|external_data_sha256|name)(\s*=\s*)"(.*)"(\s*)$')
    for line in text.splitlines():
        header = re.match(r"^\s*\[\[?([^\]]+)\]\]?\s*$", line)
        if header:
            section = header.group(1).strip()
            lines.append(line)
            continue
        m = key.match(line)
        if not m:
            lines.append(line)
            continue
        indent, k, eq, value, tail = m.groups()
        role = section[len("models.") :] if section and section.startswith("models.") else None
        if section is None and k == "name":
            value = f"{value}-int8"
        elif role in new and k == "path":
            value = new[role][0]
        elif role in new and k == "sha256":
            value = new[role][1]
        elif role in new and k in ("external_data", "external_data_sha256"):
            continue
        elif k == "path":
            value = os.path.relpath(src.parent / value, out.parent)
        lines.append(f"{indent}{k}{eq}\"{value}\"{tail}")

    opts = ", ".join(o for o, on in (("per_channel", a.per_channel), ("reduce_range", a.reduce_range)) if on) or "defaults"
    provenance = [
        f"# Generated by scripts/export/quantize_dynamic.py from {src.name}: dynamic int8 quantisation",
        f"# (onnxruntime {onnxruntime.__version__} quantize_dynamic, QInt8 weights, {opts}) of "
        + ", ".join(f"[models.{r}] (FP32 sha256 {new[r][2]})" for r in roles)
        + ".",
        "# A different model from the FP32 one: its outputs differ; score it as its own system.",
    ]
    tmp = out.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(provenance + lines) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
