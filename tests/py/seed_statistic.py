"""A port of RiVEG's statistic/statistic.py (github.com/JinYuanLi0012/RiVEG) used as the reference
for the seed protocol in tests/it/eval.rs.

Differences from the original, on purpose and per ../shared/docs/PROTOCOLS.md:
- boxes are joined to VE-positive lines by uniq_id (the original pairs them by position);
- a matched gold entity is used up (the original lets two predictions match one gold entity);
  pass --reuse-gold to get the original behaviour;
- the task is a flag (the original switches GMNER/EEG by commenting lines; MNER drops the box test).

Usage: seed_statistic.py LABELS VE_FILE REC_JSON TASK [--reuse-gold]  (TASK: mner|eeg|gmner)
Prints JSON {"right", "pred", "label"}.
"""
import json
import sys


def iou(box1, box2):
    x1, y1, x2, y2 = box1
    x1_, y1_, x2_, y2_ = box2
    x_left = max(x1, x1_)
    y_top = max(y1, y1_)
    x_right = min(x2, x2_)
    y_bottom = min(y2, y2_)
    intersection_area = max(0, x_right - x_left) * max(0, y_bottom - y_top)
    box1_area = (x2 - x1) * (y2 - y1)
    box2_area = (x2_ - x1_) * (y2_ - y1_)
    union_area = box1_area + box2_area - intersection_area
    return 0 if union_area == 0 else intersection_area / union_area


def parse_box(s):
    xmin = float(s.split(",")[0].split("[")[1])
    ymin = float(s.split(",")[1])
    xmax = float(s.split(",")[2])
    ymax = float(s.split(",")[3].split("]")[0])
    return [xmin, ymin, xmax, ymax]


def main():
    labels_path, ve_path, rec_path, task = sys.argv[1:5]
    reuse = "--reuse-gold" in sys.argv[5:]
    with open(rec_path) as f:
        rec = {d["uniq_id"]: d["box"] for d in json.load(f)}
    with open(ve_path, encoding="utf-8") as f:
        lines = [l.rstrip("\n").rstrip("\r") for l in f if l.strip()]
    pred = []
    for line in lines:
        line = line.split("Imageid:")[1]
        if line[-1] == "0":
            pred.append(line + "###&[0, 0, 0, 0]")
        else:
            uid = line.split("###")[0]
            pred.append(line + "###&" + str(rec[uid]))
    with open(labels_path, encoding="utf-8") as f:
        label = [l.split("\n")[0] for l in f if l.strip()]

    def key(ent):
        return ent.split("(")[0] if task == "eeg" else ent

    used = [False] * len(label)
    right = 0
    for pre in pred:
        pf = pre.split("###")
        pkey = pf[0].split(".jpg#")[0] + ".jpg" + key(pf[1])
        for j, gl in enumerate(label):
            if used[j] and not reuse:
                continue
            gf = gl.split("###")
            if pkey != gf[0] + key(gf[1]):
                continue
            ok = False
            if task == "mner":
                ok = True
            elif int(pf[-2]) == 0 and int(gf[-2]) == 0:
                ok = True
            elif int(pf[-2]) != 0:
                gboxes = [parse_box(b) for b in gf[-1].split("&")[1:]]
                pbox = parse_box(pre.split("&")[-1])
                ok = any(iou(g, pbox) >= 0.5 for g in gboxes)
            if ok:
                used[j] = True
                right += 1
                break
    print(json.dumps({"right": right, "pred": len(pred), "label": len(label)}))


if __name__ == "__main__":
    main()
