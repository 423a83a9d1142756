"""Runs the published GMNER scorers themselves on the inputs of tests/it/compat.rs and prints
their counts as JSON. The counts are recorded in tests/it/compat.rs; this script is how they were
obtained. The published code is NOT in this repository: pass where you put it.

    RIVEG_COMPAT_DUMP=/tmp/compat cargo test --test it compat_   # writes the inputs
    python tests/py/published_scorers.py /tmp/compat \
        --riveg-git /path/to/RiVEG/.git \
        --gmner-metrics /path/to/GMNER/model/metrics.py \
        --fmnerg-dir /path/to/FMNERG

- RiVEG (github.com/JinYuanLi0012/RiVEG): `statistic/statistic.py` is read with `git show` at
  7b98aa6 (2024-03-08, the last version before the fix) and 8aad5ef (current), and run unchanged
  as a script in a scratch folder with the shared release files and the synthetic REC boxes,
  reordered to the VE-positive line order because the script pairs boxes by position. EEG is the
  script's own commented-out EEG line swapped in; MNER replaces the two grounding tests with
  `if True:` (the script has no MNER switch).
- NUSTM/GMNER (H-Index): `_compute_tp_fn_fp` is taken from `model/metrics.py` (ast, so fastNLP
  and torch are not needed) and called per tweet on dicts built like `Seq2SeqSpanMetric.evaluate`
  does: `{span: [regions, [type]]}`, filled in entity order. Regions: the tweet's distinct
  predicted boxes are the candidates; a gold entity's regions are the candidates with IoU >= 0.5
  against one of its boxes (none: `[bbox_num + 1]`), ungroundable is `[bbox_num]`. MNER is
  `type_correct`, GMNER `tp`; EEG is `tp` with every type set to one value.
- NUSTM/FMNERG: `extract_spans_para_quad` and `compute_f1_scores_quad` from `eval_utils.py`
  (commit 554dbfb; the repository is too large to mirror, so the two files were copied from the
  code index), fed with the model's target sentences ("X is a coarse and a fine, which is (not)
  in the image", joined by " [SSEP] ") and the same candidate regions; then `more_eval.py`'s
  `elaluate_all`, `eval_ouput_file_FMNER` and `elaluate_EEG` on a results file written in
  main.py's `fine     GT:` / `fine   Pred:` layout. Those functions print percentages only; a
  `print` placed in their namespace reads their counters from the calling frame.
"""
import argparse
import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile


def iou(a, b):
    xl, yt = max(a[0], b[0]), max(a[1], b[1])
    xr, yb = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, xr - xl) * max(0, yb - yt)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0 if union == 0 else inter / union


def load_functions(path, names, extra=None):
    """Executes only the named top-level functions (and assignments) of a published file."""
    src = open(path, encoding="utf-8").read()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    ns = dict(extra or {})
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def aligned(gold, pred):
    by_id = {}
    order = []
    for side, ds in (("gold", gold), ("pred", pred)):
        for t in ds:
            if t["id"] not in by_id:
                by_id[t["id"]] = {"gold": [], "pred": []}
                order.append(t["id"])
            by_id[t["id"]][side].extend(t["entities"])
    return [(i, by_id[i]["gold"], by_id[i]["pred"]) for i in order]


def candidates(pred_entities):
    cands = []
    for e in pred_entities:
        if e["groundable"] and e["boxes"] and e["boxes"][0] not in cands:
            cands.append(e["boxes"][0])
    return cands


BBOX_NUM = 1_000_000


def gold_regions(e, cands):
    if not e["groundable"]:
        return [BBOX_NUM]
    r = [i for i, c in enumerate(cands) if any(iou(g, c) >= 0.5 for g in e["boxes"])]
    return r or [BBOX_NUM + 1]


def pred_region(e, cands):
    if not e["groundable"] or not e["boxes"]:
        return [BBOX_NUM]
    return [cands.index(e["boxes"][0])]


def h_index(dump, metrics_py):
    ns = load_functions(metrics_py, {"_compute_tp_fn_fp"})
    f = ns["_compute_tp_fn_fp"]
    tweets = aligned(read_jsonl(os.path.join(dump, "hindex_gold.jsonl")),
                     read_jsonl(os.path.join(dump, "hindex_pred.jsonl")))
    out = {"mner": [0, 0, 0], "eeg": [0, 0, 0], "gmner": [0, 0, 0]}
    for _, g, p in tweets:
        cands = candidates(p)
        for task, typed in (("gmner", True), ("eeg", False)):
            ps, ts = {}, {}
            for e in p:
                ps[(e["start"], e["end"])] = [pred_region(e, cands), [e["type"] if typed else 0]]
            for e in g:
                ts[(e["start"], e["end"])] = [gold_regions(e, cands), [e["type"] if typed else 0]]
            tp, fp, fn, uc, nc, tc, sc = f(ps, ts, BBOX_NUM)
            out[task][0] += tp
            out[task][1] += len(ps)
            out[task][2] += len(ts)
            if typed:
                out["mner"][0] += tc
                out["mner"][1] += len(ps)
                out["mner"][2] += len(ts)
    return out


def fmnerg_sentence(e):
    where = "in the image" if e["groundable"] else "not in the image"
    return f"{e['text']} is a {e['type']} and a {e['fine_type']}, which is {where}"


class Counters:
    """A `print` for the published functions' namespace: records the caller's counters."""

    def __init__(self):
        self.seen = []

    def __call__(self, *args, **kwargs):
        self.seen.append(dict(inspect.currentframe().f_back.f_locals))


def fmnerg(dump, fmnerg_dir):
    gold = read_jsonl(os.path.join(dump, "fmnerg_gold.jsonl"))
    pred = read_jsonl(os.path.join(dump, "fmnerg_pred.jsonl"))
    tweets = aligned(gold, pred)
    quiet = Counters()
    eu = load_functions(os.path.join(fmnerg_dir, "eval_utils.py"),
                        {"extract_spans_para_quad", "compute_f1_scores_quad"}, {"print": quiet})
    fine_g, fine_p, coarse_g, coarse_p = [], [], [], []
    empty_pred = 0
    for tid, g, p in tweets:
        cands = candidates(p)
        g_vis = [gold_regions(e, cands) for e in g if e["groundable"]]
        p_vis = [pred_region(e, cands)[0] for e in p if e["groundable"]]
        gs = " [SSEP] ".join(fmnerg_sentence(e) for e in g)
        ps = " [SSEP] ".join(fmnerg_sentence(e) for e in p)
        gd, gc, _, _, _ = eu["extract_spans_para_quad"](gs, g_vis, 0, tid, set(), "gold")
        pd, pc, _, _, _ = eu["extract_spans_para_quad"](ps, p_vis, 0, tid, set(), "pred")
        fine_g.append(gd)
        fine_p.append(pd)
        coarse_g.append(gc)
        coarse_p.append(pc)
        empty_pred += pd == {"  ": []}
    res = {"empty_pred_tweets": empty_pred}
    for name, P, G in (("fmnerg", fine_p, fine_g), ("fmnerg_coarse", coarse_p, coarse_g)):
        rec = Counters()
        eu["print"] = rec
        eu["compute_f1_scores_quad"](P, G, None, None)
        c = rec.seen[-1]
        # As logged (main.py) and with the n_gold bug undone: a tweet without prediction adds
        # one '  ' key to n_pred and takes one off n_gold.
        res[name + "_logged"] = [c["n_tp"], c["n_pred"], c["n_gold"]]
        res[name] = [c["n_tp"], c["n_pred"] - empty_pred, c["n_gold"] + empty_pred]
    # more_eval on a results file in main.py's layout.
    results = os.path.join(dump, "fmnerg_results.txt")
    with open(results, "w", encoding="utf-8") as f:
        for gd, pd in zip(fine_g, fine_p):
            f.write(f"fine     GT: {gd}\nfine   Pred: {pd}\n\n")
    rec = Counters()
    me = load_functions(os.path.join(fmnerg_dir, "more_eval.py"),
                        {"elaluate_all", "eval_ouput_file_FMNER", "elaluate_EEG"},
                        {"print": rec, "path": results})
    me["elaluate_all"](results)
    c = rec.seen[-1]
    res["more_eval_all"] = [c["right"], c["pred_num"], c["gt_num"]]
    me["eval_ouput_file_FMNER"](results)
    c = rec.seen[-1]
    res["fmner"] = [c["n_tp"], c["n_pred"], c["n_gold"]]
    me["elaluate_EEG"](results)
    c = rec.seen[-1]
    res["eeg"] = [c["right"], c["pred_num"], c["gt_num"]]
    return res


def riveg(dump, git_dir):
    shared = os.path.join(os.path.dirname(__file__), "../../../shared/datasets/riveg-release")
    out = {}
    for commit in ("7b98aa6", "8aad5ef"):
        script = subprocess.run(["git", "--git-dir", git_dir, "show",
                                 f"{commit}:statistic/statistic.py"],
                                check=True, capture_output=True, text=True).stdout
        hard = "OFAVE_to_OFAREC_augment.txt" if 'r"OFAVE_to_OFAREC_augment.txt"' in script \
            else "OFAVE_to_OFAREC.txt"
        gmner_line = "        if pre.split('###')[0].split('.jpg#')[0]+'.jpg'+pre.split('###')[1]==gl.split('###')[0]+gl.split('###')[1]:"
        eeg_line = "        #if pre.split('###')[0].split('.jpg#')[0]+'.jpg'+pre.split('###')[1].split('(')[0]==gl.split('###')[0]+gl.split('###')[1].split('(')[0]:"
        assert gmner_line in script and eeg_line in script
        tasks = {
            "gmner": script,
            "eeg": script.replace(gmner_line, "        #" + gmner_line.strip())
                         .replace(eeg_line, eeg_line.replace("#if", "if")),
            "mner": script.replace("if int(pre.split('###')[-2]) == 0 and int(gl.split('###')[-2])==0:", "if True:"),
        }
        assert tasks["mner"] != script
        for name in ("OFAVE_to_OFAREC_augment.txt", "OFAVE_to_OFAREC.txt"):
            with tempfile.TemporaryDirectory() as d:
                shutil.copy(os.path.join(shared, name), os.path.join(d, hard))
                shutil.copy(os.path.join(shared, "GMNER_finall_label.txt"), d)
                rec = {e["uniq_id"]: e for e in json.load(open(os.path.join(dump, f"rec_{name}.json")))}
                ordered = []
                for line in open(os.path.join(shared, name), encoding="utf-8"):
                    line = line.rstrip("\n")
                    if line and line[-1] != "0":
                        ordered.append(rec[line.split("###")[0].split("Imageid:")[1]])
                json.dump(ordered, open(os.path.join(d, "refcoco_val_predict.json"), "w"))
                for task, src in tasks.items():
                    with open(os.path.join(d, "statistic.py"), "w", encoding="utf-8") as f:
                        f.write(src)
                    r = subprocess.run([sys.executable, "statistic.py"], cwd=d, check=True,
                                       capture_output=True, text=True).stdout
                    right = [l for l in r.splitlines() if l.startswith("right")][0]
                    out.setdefault(name, {}).setdefault(commit, {})[task] = int(right.split(":")[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--riveg-git")
    ap.add_argument("--gmner-metrics")
    ap.add_argument("--fmnerg-dir")
    a = ap.parse_args()
    res = {}
    if a.riveg_git:
        res["riveg"] = riveg(a.dump, a.riveg_git)
    if a.gmner_metrics:
        res["h_index"] = h_index(a.dump, a.gmner_metrics)
    if a.fmnerg_dir:
        res["fmnerg"] = fmnerg(a.dump, a.fmnerg_dir)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
