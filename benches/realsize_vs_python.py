#!/usr/bin/env python3
"""Full-size real-architecture stages: `riveg-bench run` against a plain Python onnxruntime loop
on identical inputs (driven by benches/realsize_vs_python.sh, which documents the usage).

Subcommands:
  prepare  the inputs: the first N tweets of Twitter-GMNER v2.0 test as canonical JSONL, each
           tweet's image a link <id>.<ext> to one of models/arch/photos/ (cycling), gold boxes
           rescaled from the original photo size (xml <size>) to that photo.
  loop     the Python side of one stage: one ONNX Runtime call per item (per tweet; SAM: the
           encoder once per image, the decoder once per box), the same ORT session settings as
           the harness run (intra-op threads, spinning; graph optimisation at its default, ALL, which
           is riveg-bench's Level3), the same tokens and the same preprocessing (Pillow resize, the
           manifest's rescale/mean/std), per-item latencies with the first `warmup` calls excluded.
  bench    the whole comparison: for each stage and each repeat, the harness process then the
           Python process (interleaved), each timed as a whole process (wall, and user+sys CPU
           from getrusage of the child); then both again on only the tweets of the warm-up items,
           to subtract set-up CPU (model loading, hashing, session creation) and get the CPU per
           timed item; then a table of medians and spreads.

The Python loop does less than the harness per item: no CRF decoding or word alignment (tagger),
no box post-processing (grounder), no mask upsampling or RLE (segmenter); a ratio near 1 means
the harness adds nothing measurable around the model.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("tagger", "entailer", "grounder", "segmenter")


# ---------------------------------------------------------------- prepare
def prepare(a):
    photos = sorted(p for p in (ROOT / "models/arch/photos").iterdir() if p.suffix in (".png", ".jpg"))
    out = Path(a.out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = Path(a.gold).read_text(encoding="utf-8").splitlines()
    header, tweets = None, []
    for line in lines:
        d = json.loads(line)
        if "header" in d:
            header = line
            continue
        tweets.append(d)
    tweets = tweets[: a.n]
    from PIL import Image

    sizes = {p.name: Image.open(p).size for p in photos}
    kept = []
    for i, t in enumerate(tweets):
        photo = photos[i % len(photos)]
        name = f"{t['id']}{photo.suffix}"
        link = images / name
        if not link.exists():
            link.symlink_to(photo)
        t["image"] = name
        pw, ph = sizes[photo.name]
        xml = Path(a.xml) / f"{t['id']}.xml"
        ow, oh = pw, ph
        if xml.exists():
            size = ET.parse(xml).getroot().find("size")
            ow, oh = float(size.find("width").text), float(size.find("height").text)
        for e in t["entities"]:
            boxes = []
            for x1, y1, x2, y2 in e.get("boxes", []):
                b = [x1 * pw / ow, y1 * ph / oh, x2 * pw / ow, y2 * ph / oh]
                b = [round(min(max(v, 0.0), lim), 2) for v, lim in zip(b, (pw, ph, pw, ph))]
                if b[2] > b[0] and b[3] > b[1]:
                    boxes.append(b)
            e["boxes"] = boxes
            e["groundable"] = bool(boxes)
            e.pop("masks", None)
        kept.append(json.dumps(t, ensure_ascii=False))
    (out / "gold.jsonl").write_text("\n".join(([header] if header else []) + kept) + "\n", encoding="utf-8")
    n_ent = sum(len(json.loads(k)["entities"]) for k in kept)
    n_box = sum(1 for k in kept for e in json.loads(k)["entities"] if e["boxes"])
    print(f"prepared {len(kept)} tweets, {n_ent} entities, {n_box} with a box, {len(photos)} photos cycling -> {out}")


# ---------------------------------------------------------------- the Python loop
def session(path, threads, spinning):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def load_tokenizer(base, spec):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / spec["path"]))
    tok.no_padding()
    tok.enable_truncation(spec["max_length"])
    pad = next((tok.token_to_id(t) for t in ("[PAD]", "<pad>", "<|pad|>") if tok.token_to_id(t) is not None), 0)
    return tok, pad


def pixels(path, pre):
    """The manifest's preprocessing with Pillow: stretch or longest side (+ zero padding after
    normalisation), rescale, mean/std; [1, 3, H, W] float32, and the resized (h, w)."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    H, W = pre["image_size"]
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST, "lanczos": Image.LANCZOS}[pre["filter"]]
    w, h = img.size
    if pre["resize"] == "longest_side":
        scale = W / max(w, h)
        nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    else:
        nh, nw = H, W
    arr = np.asarray(img.resize((nw, nh), filt), dtype=np.float32) * np.float32(pre["rescale"])
    arr = (arr - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    out = np.zeros((1, 3, H, W), np.float32)
    out[0, :, :nh, :nw] = arr.transpose(2, 0, 1)
    return out, (nh, nw), (h, w)


def encode_queries(tok, pad, queries):
    encs = [tok.encode(q).ids for q in queries]
    n = max(1, max(len(e) for e in encs))
    ids = np.full((len(encs), n), pad, np.int64)
    mask = np.zeros((len(encs), n), np.int64)
    for i, e in enumerate(encs):
        ids[i, : len(e)] = e
        mask[i, : len(e)] = 1
    return ids, mask


def loop(a):
    t_start = time.perf_counter()
    manifest = Path(a.manifest)
    m = tomllib.loads(manifest.read_text())
    base = manifest.parent
    tweets = [json.loads(l) for l in Path(a.gold).read_text(encoding="utf-8").splitlines()]
    tweets = [t for t in tweets if "header" not in t]
    images = Path(a.images)
    spinning = {"true": True, "false": False}.get(a.spinning)
    items = []  # one closure per item, built before timing; the work happens inside the call

    if a.stage == "tagger":
        sess = session(base / m["models"]["main"]["path"], a.threads, spinning)
        tok, _ = load_tokenizer(base, m["tokenizer"])
        names = [i["name"] for i in m["models"]["main"]["inputs"]]

        def tag(words):
            ids = np.array([tok.encode(words, is_pretokenized=True).ids], np.int64)
            feed = {"input_ids": ids}
            if "attention_mask" in names:
                feed["attention_mask"] = np.ones_like(ids)
            if "token_type_ids" in names:
                feed["token_type_ids"] = np.zeros_like(ids)
            sess.run(None, feed)

        items = [(tag, (t["tokens"],)) for t in tweets if t["tokens"]]
    elif a.stage in ("entailer", "grounder"):
        sess = session(base / m["models"]["main"]["path"], a.threads, spinning)
        tok, pad = load_tokenizer(base, m["tokenizer"])
        pre = m["preprocess"]

        def query_image(path, queries):
            px, _, _ = pixels(path, pre)
            ids, mask = encode_queries(tok, pad, queries)
            sess.run(None, {"pixel_values": px, "input_ids": ids, "attention_mask": mask})

        # Reformulation off: the query is the entity text; entailer off upstream of the
        # grounder: every entity is grounded.
        items = [(query_image, (images / t["image"], [e["text"] for e in t["entities"]])) for t in tweets if t["entities"]]
    elif a.stage == "segmenter":
        enc = session(base / m["models"]["encoder"]["path"], a.threads, spinning)
        dec = session(base / m["models"]["decoder"]["path"], a.threads, spinning)
        pre = m["preprocess"]

        def segment(path, boxes):
            px, (nh, nw), (h, w) = pixels(path, pre)
            (emb,) = enc.run(["image_embeddings"], {"pixel_values": px})
            sx, sy = nw / w, nh / h
            for x1, y1, x2, y2 in boxes:
                box = np.array([[x1 * sx, y1 * sy, x2 * sx, y2 * sy]], np.float32)
                dec.run(None, {"image_embeddings": emb, "box": box})

        for t in tweets:
            # Oracle VE + oracle VG: the gold groundable entities, each with the first box of the
            # first gold entity of the same text that has boxes (as pipeline::recorded does).
            boxes = []
            for e in t["entities"]:
                if not e["groundable"]:
                    continue
                g = next((g for g in t["entities"] if g["text"] == e["text"] and g["boxes"]), None)
                boxes.append(g["boxes"][0] if g else [0.0, 0.0, 0.0, 0.0])
            if boxes:
                items.append((segment, (images / t["image"], boxes)))
    else:
        raise SystemExit(f"unknown stage {a.stage}")

    samples = []
    t_loop = time.perf_counter()
    for f, args in items:
        t0 = time.perf_counter()
        f(*args)
        samples.append((time.perf_counter() - t0) * 1000.0)
    loop_s = time.perf_counter() - t_loop
    timed = samples[a.warmup :]
    total = sum(timed)
    out = {
        "count": len(timed),
        "warmup_excluded": len(samples) - len(timed),
        "mean_ms": total / len(timed) if timed else None,
        "p50_ms": float(np.percentile(timed, 50)) if timed else None,
        "total_ms": total,
        "throughput_per_s": 1000.0 * len(timed) / total if total else None,
        "loop_s": loop_s,
        "setup_s": t_loop - t_start,
    }
    Path(a.out).write_text(json.dumps(out))


# ---------------------------------------------------------------- bench
SUITE = """name = "realsize-{stage}"
[data]
gold = {{ format = "jsonl", path = "{gold}" }}
images = "{images}"
[models]
{stage} = "{manifest}"
[settings]
warmup = {warmup}
on_error = "fail"
[[variant]]
name = "{stage}"
knowledge = "off"
tagger = "{tagger}"
reformulator = "off"
entailer = "{entailer}"
grounder = "{grounder}"
segmenter = "{segmenter}"
"""

# The stage under test runs on ONNX; upstream stages are oracles (gold) or off, so that only it varies.
KINDS = {
    "tagger": dict(tagger="onnx", entailer="off", grounder="off", segmenter="off"),
    "entailer": dict(tagger="oracle", entailer="onnx", grounder="off", segmenter="off"),
    "grounder": dict(tagger="oracle", entailer="off", grounder="onnx", segmenter="off"),
    "segmenter": dict(tagger="oracle", entailer="oracle", grounder="oracle", segmenter="onnx"),
}


def timed_process(cmd, log):
    """Runs cmd; returns the wall seconds and user+sys CPU seconds of that child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        raise SystemExit(f"{cmd[0]} failed (exit {rc}); see {log}:\n" + Path(log).read_text()[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def is_item(stage, tweet):
    """Whether the stage makes a model call for this tweet (the same rules as `loop`)."""
    if stage == "tagger":
        return bool(tweet["tokens"])
    if stage in ("entailer", "grounder"):
        return bool(tweet["entities"])
    return any(e["groundable"] for e in tweet["entities"])


def gold_prefix(work, gold, n, name):
    """The first n tweets of the prepared gold (header kept) as their own file."""
    sub = work / f"gold-{name}.jsonl"
    lines = gold.read_text(encoding="utf-8").splitlines()
    head = [l for l in lines if '"header"' in l[:12]]
    body = [l for l in lines if '"header"' not in l[:12]][:n]
    sub.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    return sub, body


def run_pair(a, stage, manifest, gold, images, work, tag, python_first=False):
    """The harness process and the Python process, one after the other, on the same gold file
    (Python first when asked: repeats alternate the order, so that a load that changes over
    time does not always hit the same side first)."""
    suite = work / f"suite-{stage}-{tag}.toml"
    suite.write_text(SUITE.format(stage=stage, gold=gold, images=images, manifest=manifest, warmup=a.warmup, **KINDS[stage]))
    run_dir = work / f"run-{stage}-{tag}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    harness = [a.bin, "-q", "run", "--suite", str(suite), "--no-cache", "--device", "cpu", "--out", str(run_dir),
               "--format", "json"]
    if not a.harness_defaults:
        harness += ["--threads", str(a.threads), "--spinning", a.spinning]
    if a.batch:
        harness += ["--batch", str(a.batch), "--image-batch", str(a.batch)]
    py_out = work / f"python-{stage}-{tag}.json"
    python = [sys.executable, __file__, "loop", "--stage", stage, "--manifest", str(manifest), "--gold", str(gold),
              "--images", str(images), "--threads", str(a.threads), "--spinning", a.spinning, "--warmup", str(a.warmup),
              "--out", str(py_out)]
    if python_first:
        proc_p = timed_process(python, work / f"python-{stage}-{tag}.log")
    proc_h = timed_process(harness, work / f"harness-{stage}-{tag}.log")
    if not python_first:
        proc_p = timed_process(python, work / f"python-{stage}-{tag}.log")
    t = json.loads((run_dir / "results.json").read_text())["variants"][0]["timings"][stage]
    return t, proc_h, json.loads(py_out.read_text()), proc_p


def bench(a):
    """Per stage and repeat: the full pair, then (with setup runs) the pair on only the tweets of
    the warm-up items, whose process CPU is subtracted: CPU per timed item = (CPU of the full
    run - CPU of the setup run) / timed items. CPU time is less sensitive than wall time to the
    other users of a shared machine (it still grows somewhat under contention)."""
    work = Path(a.work)
    gold, images = work / "gold.jsonl", work / "images"
    rows = {}
    for rep in range(a.repeats):
        for stage in a.stages:
            manifest = Path(a.manifests[stage]).resolve()
            # The heavy image stages on fewer tweets (SAM ViT-B takes seconds per image on 2 cores).
            n = a.tweets.get(stage, a.n)
            sub, body = gold_prefix(work, gold, n, f"{stage}-{n}")
            t, proc_h, p, proc_p = run_pair(a, stage, manifest, sub, images, work, str(rep), rep % 2 == 1)
            r = {"h_mean": t["mean_ms"], "h_p50": t["p50_ms"], "h_n": t["count"], "h_thr": t["throughput_per_s"],
                 "p_mean": p["mean_ms"], "p_p50": p["p50_ms"], "p_n": p["count"], "p_thr": p["throughput_per_s"],
                 "h_proc": proc_h, "p_proc": proc_p}
            r["ratio"] = r["h_thr"] / r["p_thr"]
            line = (f"repeat {rep + 1} {stage:<9} harness {t['mean_ms']:9.2f} ms/item (p50 {t['p50_ms']:.2f}, n={t['count']}, "
                    f"process {proc_h['wall_s']:.1f} s wall / {proc_h['cpu_s']:.1f} s CPU)   python {p['mean_ms']:9.2f} ms/item "
                    f"(p50 {p['p50_ms']:.2f}, n={p['count']}, process {proc_p['wall_s']:.1f} s / {proc_p['cpu_s']:.1f} s)   "
                    f"ratio {r['ratio']:.3f}")
            if a.setup_runs:
                k, items = 0, 0
                while items < a.warmup and k < len(body):
                    items += is_item(stage, json.loads(body[k]))
                    k += 1
                setup, _ = gold_prefix(work, gold, k, f"{stage}-setup")
                _, sh, _, sp = run_pair(a, stage, manifest, setup, images, work, f"{rep}-setup", rep % 2 == 1)
                r["h_cpu_item_ms"] = 1000.0 * (proc_h["cpu_s"] - sh["cpu_s"]) / t["count"]
                r["p_cpu_item_ms"] = 1000.0 * (proc_p["cpu_s"] - sp["cpu_s"]) / p["count"]
                r["cpu_ratio"] = r["p_cpu_item_ms"] / r["h_cpu_item_ms"]
                line += (f"   CPU/item {r['h_cpu_item_ms']:.1f} vs {r['p_cpu_item_ms']:.1f} ms (setup {sh['cpu_s']:.1f} vs "
                         f"{sp['cpu_s']:.1f} s), ratio {r['cpu_ratio']:.3f}")
            rows.setdefault(stage, []).append(r)
            print(line, flush=True)
            if r["h_n"] != r["p_n"]:
                print(f"  warning: {stage}: harness timed {r['h_n']} items, python {r['p_n']}", flush=True)
    (work / "rows.json").write_text(json.dumps(rows, indent=1))
    if a.keep:
        shutil.copy(work / "rows.json", a.keep)
    print()
    print(f"medians over {a.repeats} interleaved repeats [min-max]; threads={a.threads} spinning={a.spinning}")
    print(f"{'stage':<10} {'n':>4} {'harness ms/item':>24} {'python ms/item':>24} {'p50 h/py':>16} {'ratio h/py thr':>22} "
          f"{'wall h/py s':>12} {'CPU h/py s':>12} {'CPU/item h/py ms':>18} {'CPU ratio py/h':>22}")
    for stage, rs in rows.items():
        def med(key):
            vals = [r[key] for r in rs]
            return statistics.median(vals), min(vals), max(vals)

        hm, pm, ra = med("h_mean"), med("p_mean"), med("ratio")
        h50, p50 = med("h_p50")[0], med("p_p50")[0]
        hw = statistics.median(r["h_proc"]["wall_s"] for r in rs)
        pw = statistics.median(r["p_proc"]["wall_s"] for r in rs)
        hc = statistics.median(r["h_proc"]["cpu_s"] for r in rs)
        pc = statistics.median(r["p_proc"]["cpu_s"] for r in rs)
        cpu = ""
        if "cpu_ratio" in rs[0]:
            hci, pci, cr = med("h_cpu_item_ms"), med("p_cpu_item_ms"), med("cpu_ratio")
            cpu = f" {hci[0]:>8.1f}/{pci[0]:<8.1f} {cr[0]:>8.3f} [{cr[1]:.3f}-{cr[2]:.3f}]"
        print(f"{stage:<10} {rs[0]['h_n']:>4} {hm[0]:>9.2f} [{hm[1]:.2f}-{hm[2]:.2f}] {pm[0]:>9.2f} [{pm[1]:.2f}-{pm[2]:.2f}] "
              f"{h50:>7.2f}/{p50:<7.2f} {ra[0]:>8.3f} [{ra[1]:.3f}-{ra[2]:.3f}] {hw:>5.1f}/{pw:<5.1f} {hc:>5.1f}/{pc:<5.1f}{cpu}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("prepare")
    q.add_argument("--gold", required=True, help="canonical JSONL of the test split (riveg-bench import gmner)")
    q.add_argument("--xml", required=True, help="the data set's xml/ folder (original photo sizes)")
    q.add_argument("--n", type=int, default=200)
    q.add_argument("--out", required=True)
    q = sub.add_parser("loop")
    q.add_argument("--stage", choices=STAGES, required=True)
    q.add_argument("--manifest", required=True)
    q.add_argument("--gold", required=True)
    q.add_argument("--images", required=True)
    q.add_argument("--threads", type=int, default=0)
    q.add_argument("--spinning", choices=["true", "false", "default"], default="default")
    q.add_argument("--warmup", type=int, default=3)
    q.add_argument("--out", required=True)
    q = sub.add_parser("bench")
    q.add_argument("--work", required=True)
    q.add_argument("--bin", required=True)
    q.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    q.add_argument("--manifest", action="append", default=[], help="STAGE=path (repeatable)")
    q.add_argument("--n", type=int, default=200, help="tweets per stage (the first N of the prepared ones)")
    q.add_argument("--tweets", action="append", default=[], help="STAGE=N: another count for one stage (repeatable)")
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--threads", type=int, default=os.cpu_count())
    q.add_argument("--spinning", choices=["true", "false"], default="true")
    q.add_argument("--warmup", type=int, default=3)
    q.add_argument("--harness-defaults", action="store_true",
                   help="run the harness at its own defaults (ORT threads, spinning off, batch 32, image batch 8) while "
                        "Python keeps --threads/--spinning: the issue-15 goal, each side as shipped")
    q.add_argument("--batch", type=int, default=0,
                   help="the harness's [runtime] batch and image_batch (tweets per tagger call and per VE/VG run; 0: the suite's defaults)")
    q.add_argument("--no-setup-runs", dest="setup_runs", action="store_false",
                   help="skip the runs on the warm-up tweets only (no CPU per item)")
    q.add_argument("--keep", help="copy rows.json (every figure of every repeat) here")
    a = p.parse_args()
    if a.cmd == "prepare":
        prepare(a)
    elif a.cmd == "loop":
        loop(a)
    else:
        a.manifests = dict(kv.split("=", 1) for kv in a.manifest)
        a.tweets = {k: int(v) for k, v in (kv.split("=", 1) for kv in a.tweets)}
        missing = [s for s in a.stages if s not in a.manifests]
        if missing:
            raise SystemExit(f"no manifest for {missing}: pass --manifest STAGE=path")
        bench(a)


if __name__ == "__main__":
    main()
