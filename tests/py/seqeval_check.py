"""Reference scores from seqeval 1.2.2 (default mode, or strict mode) for the span-protocol
cross-check.

Usage: seqeval_check.py FILE GOLD_COL PRED_COL [--eos] [--strict IOB2|IOBES]
Reads a column file (optional IMGID: lines, token<TAB>tags..., blank line between sentences),
drops tokens from <EOS> to the end of a sentence with --eos (AdaSeq output), and prints JSON with
micro precision/recall/f1 and the per-type report. Called by tests/it/eval.rs.
"""
import json
import sys

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score


def read(path, gold_col, pred_col, eos):
    y_true, y_pred, t, p = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if t:
                    y_true.append(t)
                    y_pred.append(p)
                t, p = [], []
                continue
            if line.startswith("IMGID:"):
                if t:
                    y_true.append(t)
                    y_pred.append(p)
                t, p = [], []
                continue
            cols = line.split("\t")
            if eos and cols[0] == "<EOS>":
                # mark the rest of the sentence as dropped
                t.append(None)
                p.append(None)
                continue
            t.append(cols[gold_col])
            p.append(cols[pred_col])
    if t:
        y_true.append(t)
        y_pred.append(p)
    # drop everything from the first None (the <EOS> marker) to the end of each sentence
    def cut(seq):
        return seq[: seq.index(None)] if None in seq else seq
    return [cut(s) for s in y_true], [cut(s) for s in y_pred]


def main():
    path, gold_col, pred_col = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    eos = "--eos" in sys.argv[4:]
    kw = {}
    if "--strict" in sys.argv[4:]:
        import seqeval.scheme
        kw = {"mode": "strict",
              "scheme": getattr(seqeval.scheme, sys.argv[sys.argv.index("--strict") + 1])}
    y_true, y_pred = read(path, gold_col, pred_col, eos)
    report = classification_report(y_true, y_pred, output_dict=True, digits=10, zero_division=0,
                                   **kw)
    per_type = {
        k: {m: (int(x) if m == "support" else float(x)) for m, x in v.items()}
        for k, v in report.items()
        if k not in ("micro avg", "macro avg", "weighted avg")
    }
    print(json.dumps({
        "precision": float(precision_score(y_true, y_pred, **kw)),
        "recall": float(recall_score(y_true, y_pred, **kw)),
        "f1": float(f1_score(y_true, y_pred, **kw)),
        "sentences": len(y_true),
        "per_type": per_type,
        "averages": {k: {m: float(report[k][m]) for m in ("precision", "recall", "f1-score")}
                     for k in ("macro avg", "weighted avg")},
    }))


if __name__ == "__main__":
    main()
