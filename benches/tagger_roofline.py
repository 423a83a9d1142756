#!/usr/bin/env python3
"""How close a token-classification tagger already runs to this CPU's FP32 GEMM ceiling, and so
the most that any harness (batching, threads, fewer copies) can gain over a plain Python
onnxruntime loop on the same model (issue 15's tagger goal).

    .venv/bin/python benches/tagger_roofline.py MANIFEST [--n 200] [--repeats 3] [--threads 0]
        [--int8]

MANIFEST is a tagger manifest (e.g. the full-size BERT-base export of
scripts/export/make_fullsize.py). Tweets are the first N of Twitter-GMNER v2.0 test, read from
../shared (CoNLL text), tokenised with the manifest's tokenizer exactly as
benches/realsize_vs_python.py does.

What it measures, interleaved `--repeats` times in one process (ORT's default session options:
graph optimisation ALL, spinning on; intra-op threads `--threads`, 0 = ORT's default, one per core):
  flops    the work per tweet from the graph: 2*K*N per token for every MatMul/Gemm whose second
           input is a weight (K x N), plus 2 * 2 * L^2 * (K of the first weight MatMul) per layer
           for the two attention products (QK^T and AV), counted once per pair of dynamic MatMuls.
  loop     one session.run per tweet (the Python baseline of benches/realsize_vs_python.sh):
           achieved GFLOP/s = the tweets' FLOPs / wall time.
  batch32  tweets sorted by length, batches of 32 padded to the batch's longest (what
           riveg-bench's tagger does): achieved GFLOP/s counting only the unpadded work.
  gemm     the ceiling: ORT running one MatMul [M, K] x [K, N] with the model's largest weight
           shape and M = 2048 rows, which is MLAS's best case on this CPU.
  int8     (--int8) the same loop on onnxruntime.quantization.quantize_dynamic(model) (weights
           int8, activations quantised per call; VNNI where the CPU has it), with the share of
           tokens whose argmax label matches FP32's: the one lever past the FP32 ceiling, which
           changes the model's numbers and so is a different model, not a harness setting.

The table it prints: the loop's share of the GEMM ceiling is the reason the harness cannot be
much faster than the loop in FP32 on a CPU; `ceiling / loop` is the most any harness could gain.
"""

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
TEST = ROOT.parent / "shared/datasets/twitter-gmner/v2.0/txt/test.txt"


def tweets(n):
    out, words = [], []
    for line in TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("IMGID:"):
            if words:
                out.append(words)
            words = []
        elif line.strip():
            words.append(line.split("\t")[0])
    if words:
        out.append(words)
    return [w for w in out if w][:n]


def session(path, threads):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def graph_flops(model_path):
    """(per-token FLOPs of weight MatMuls, attention width, number of attention pairs, largest
    weight shape)."""
    m = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    # Weights behind a Transpose/Cast still count as weights.
    alias = {}
    for node in m.graph.node:
        if node.op_type in ("Transpose", "Cast", "Identity") and node.input and node.input[0] in inits:
            dims = inits[node.input[0]]
            if node.op_type == "Transpose" and len(dims) == 2:
                dims = dims[::-1]
            alias[node.output[0]] = dims
    inits.update(alias)
    per_token, dynamic, width, largest = 0, 0, None, (0, 0)
    for node in m.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        b = inits.get(node.input[1])
        if b is not None and len(b) == 2:
            k, n = b
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in node.attribute):
                k, n = n, k
            per_token += 2 * k * n
            width = width or k
            if k * n > largest[0] * largest[1]:
                largest = (k, n)
        else:
            dynamic += 1
    return per_token, width, dynamic // 2, largest


def gemm_model(k, n, path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32) * 0.02, "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["m", n])],
        [w],
    )
    mod = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mod.ir_version = 8
    onnx.save(mod, str(path))


def feeds(names, ids, mask):
    f = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        f["token_type_ids"] = np.zeros_like(ids)
    return {k: v for k, v in f.items() if k in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--int8", action="store_true")
    a = ap.parse_args()

    manifest_path = Path(a.manifest).resolve()
    m = tomllib.loads(manifest_path.read_text())
    base = manifest_path.parent
    model = base / m["models"]["main"]["path"]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / m["tokenizer"]["path"]))
    tok.no_padding()
    tok.enable_truncation(m["tokenizer"]["max_length"])
    pad = next((tok.token_to_id(t) for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), 0)
    encoded = [np.array(tok.encode(w, is_pretokenized=True).ids, np.int64) for w in tweets(a.n)]
    lengths = [len(e) for e in encoded]

    per_token, width, pairs, largest = graph_flops(model)
    flops = [per_token * L + pairs * 2 * 2 * L * L * width for L in lengths]
    total_gflop = sum(flops) / 1e9

    sess = session(model, a.threads)
    names = {i.name for i in sess.get_inputs()}
    out_name = sess.get_outputs()[0].name

    def loop(s):
        t0 = time.perf_counter()
        for ids in encoded:
            x = ids[None, :]
            s.run([out_name], feeds(names, x, np.ones_like(x)))
        return time.perf_counter() - t0

    order = sorted(range(len(encoded)), key=lambda i: lengths[i])
    batches = [order[i : i + a.batch] for i in range(0, len(order), a.batch)]

    def batched(s):
        t0 = time.perf_counter()
        for b in batches:
            L = max(lengths[i] for i in b)
            ids = np.full((len(b), L), pad, np.int64)
            mask = np.zeros((len(b), L), np.int64)
            for r, i in enumerate(b):
                ids[r, : lengths[i]] = encoded[i]
                mask[r, : lengths[i]] = 1
            s.run([out_name], feeds(names, ids, mask))
        return time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp(prefix="roofline-"))
    gemm_path = tmp / "gemm.onnx"
    gemm_model(largest[0], largest[1], gemm_path)
    gsess = session(gemm_path, a.threads)
    M = 2048
    gx = np.random.default_rng(1).standard_normal((M, largest[0]), dtype=np.float32)
    gemm_gflop = 2 * M * largest[0] * largest[1] / 1e9

    def gemm(s):
        t0 = time.perf_counter()
        for _ in range(10):
            s.run(["y"], {"x": gx})
        return (time.perf_counter() - t0) / 10

    q_sess = None
    if a.int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q_path = tmp / "int8.onnx"
        quantize_dynamic(str(model), str(q_path), weight_type=QuantType.QInt8)
        q_sess = session(q_path, a.threads)

    # Warm-up: every session once.
    loop(sess)
    batched(sess)
    gemm(gsess)
    if q_sess:
        loop(q_sess)

    rows = {"loop": [], "batch": [], "gemm": [], "int8": []}
    for r in range(a.repeats):
        rows["gemm"].append(gemm_gflop / gemm(gsess))
        rows["loop"].append(total_gflop / loop(sess))
        rows["batch"].append(total_gflop / batched(sess))
        if q_sess:
            rows["int8"].append(total_gflop / loop(q_sess))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rows.items() if v), file=sys.stderr)

    agree = None
    if q_sess:
        same = total = 0
        for ids in encoded:
            x = ids[None, :]
            f = feeds(names, x, np.ones_like(x))
            a32 = sess.run([out_name], f)[0].argmax(-1)
            a8 = q_sess.run([out_name], f)[0].argmax(-1)
            same += int((a32 == a8).sum())
            total += a32.size
        agree = same / total

    med = {k: statistics.median(v) for k, v in rows.items() if v}
    spread = {k: f"[{min(v):.1f}-{max(v):.1f}]" for k, v in rows.items() if v}
    mean_len = statistics.mean(lengths)
    print(f"model: {model.name} ({manifest_path.name}); {len(encoded)} tweets, {mean_len:.1f} subwords per tweet "
          f"(median {statistics.median(lengths):.0f}, max {max(lengths)})")
    print(f"work: {per_token / 2e6:.1f}M weight MACs per token, {pairs} attention pairs of width {width}; "
          f"{total_gflop / len(encoded):.2f} GFLOP per tweet")
    print(f"gemm ceiling: MatMul [{M}, {largest[0]}] x {list(largest)}, ORT threads {a.threads or 'default'}")
    print()
    print("| what | GFLOP/s (median [min-max]) | share of the GEMM ceiling | ms per tweet |")
    print("| --- | --- | --- | --- |")
    per_tweet = lambda g: 1000 * total_gflop / g / len(encoded)
    labels = {"gemm": "GEMM ceiling (MatMul, M = 2048)", "loop": "Python loop, one call per tweet",
              "batch": f"length-sorted batches of {a.batch}", "int8": "Python loop, dynamic int8 model"}
    for k in ("gemm", "loop", "batch", "int8"):
        if k in med:
            share = med[k] / med["gemm"]
            ms = "" if k == "gemm" else f"{per_tweet(med[k]):.1f}"
            print(f"| {labels[k]} | {med[k]:.1f} {spread[k]} | {share:.2f} | {ms} |")
    print()
    print(f"most any FP32 harness can gain over the loop: {med['gemm'] / med['loop']:.2f}x (ceiling / loop); "
          f"batching measured here: {med['batch'] / med['loop']:.2f}x")
    if agree is not None:
        print(f"int8: {med['int8'] / med['loop']:.2f}x the FP32 loop; argmax label agrees with FP32 on {100 * agree:.2f} % of tokens")


if __name__ == "__main__":
    main()
