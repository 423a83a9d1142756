#!/usr/bin/env python3
"""Generate the smoke-suite data under tests/fixtures/smoke/ (used by suites/smoke.toml).

Eight synthetic tweets whose words are all in the tiny tokenizer's vocabulary (models/tiny), with
64x48 PNG images: groundable tweets have a white rectangle on a grey background at the gold box
(the tiny grounder boxes bright pixels, the tiny SAM masks them, the tiny entailer says yes to
bright images); tweets with only ungroundable entities have dark images. Gold masks (SMNER) are the
filled rectangles as COCO RLE (pycocotools). `recorded.jsonl` is a recorded pipeline output for the
`replay` variant (expansions, VE decisions and boxes, some of them deliberately wrong).

The smoke suite runs three datasets on the same images: `smner` (gold.jsonl, recorded.jsonl: boxes
and masks), `gmner/` (the tweets renamed g1..g8, boxes only) and `fmnerg/` (tweets f1..f6, boxes and
fine types; the recording gets every fourth fine type wrong, a sibling type of the same coarse
type), so FMNERG and SMNER metrics come out of real pipeline runs.

Deterministic; re-running gives identical bytes. Usage: .venv/bin/python scripts/gen_smoke_data.py
"""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "smoke"
W, H = 64, 48
GREY, DARK, WHITE = 100, 20, 255

# (id, tokens, [(start, end, type, box or None)])
TWEETS = [
    ("s1", "Angelina Jolie at the Oscars today", [(0, 2, "PER", [8, 6, 40, 40]), (4, 5, "OTHER", None)]),
    ("s2", "visit Paris with Taylor Swift !", [(1, 2, "LOC", None), (3, 5, "PER", [30, 10, 60, 44])]),
    ("s3", "Lionel Messi and Arsenal FC game", [(0, 2, "PER", [4, 4, 28, 40]), (3, 5, "ORG", None)]),
    ("s4", "love the new iPhone at Apple Inc", [(3, 4, "OTHER", [20, 14, 44, 34]), (5, 7, "ORG", None)]),
    ("s5", "RT @ NASA : photo in Texas", [(2, 3, "ORG", None), (6, 7, "LOC", None)]),
    ("s6", "Donald Trump in New York today", [(0, 2, "PER", [10, 8, 34, 46]), (3, 5, "LOC", None)]),
    ("s7", "love London", [(1, 2, "LOC", None)]),
    ("s8", "Taylor Swift at the game in London", [(0, 2, "PER", [36, 2, 62, 30]), (6, 7, "LOC", None)]),
]

# Fine types of the FMNERG-like dataset (entity text -> fine type), and the wrong sibling the
# recording uses for every fourth entity.
FINE = {
    "Angelina Jolie": "actor", "Oscars": "award", "Paris": "city", "Taylor Swift": "singer",
    "Lionel Messi": "athlete", "Arsenal FC": "sports_team", "iPhone": "product",
    "Apple Inc": "company", "NASA": "government_agency", "Texas": "state",
    "Donald Trump": "politician", "New York": "city", "London": "city",
}
SIBLING = {
    "actor": "singer", "award": "event", "city": "country", "singer": "actor",
    "athlete": "coach", "sports_team": "company", "product": "award", "company": "sports_team",
    "government_agency": "company", "state": "city", "politician": "athlete", "country": "city",
}


def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(data)


def rect_mask(box):
    m = np.zeros((H, W), dtype=np.uint8, order="F")
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def main():
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    gold_lines, rec_lines = [], []
    for n, (tid, text, ents) in enumerate(TWEETS):
        tokens = text.split()
        boxes = [b for *_, b in ents if b]
        img = np.full((H, W, 3), GREY if boxes else DARK, dtype=np.uint8)
        for x1, y1, x2, y2 in boxes:
            img[y1:y2, x1:x2] = WHITE
        png(OUT / "images" / f"{tid}.png", img)
        gold, rec = [], []
        for i, (s, e, ty, box) in enumerate(ents):
            surface = " ".join(tokens[s:e])
            g = {"text": surface, "type": ty, "start": s, "end": e, "groundable": box is not None,
                 "boxes": [list(map(float, box))] if box else []}
            if box:
                g["masks"] = [rect_mask(box)]
            gold.append(g)
            # The recording: right spans; every third VE decision flipped; boxes shifted by 2 px.
            flip = (n + i) % 3 == 2
            decided = (box is not None) != flip
            r = {"text": surface, "type": ty, "start": s, "end": e, "groundable": decided,
                 "boxes": [], "expansion": f"{surface}({ty})-A recorded description of {surface}.",
                 "uid": f"{tid}.png#{i:04x}"}
            if decided:
                b = box or [0, 0, 8, 8]
                r["boxes"] = [[b[0] + 2.0, b[1] + 2.0, b[2] + 2.0, b[3] + 2.0]]
            rec.append(r)
        base = {"id": tid, "image": f"{tid}.png", "tokens": tokens}
        gold_lines.append(json.dumps({**base, "entities": gold}))
        rec_lines.append(json.dumps({**base, "entities": rec}))
    (OUT / "gold.jsonl").write_text("\n".join(gold_lines) + "\n")
    (OUT / "recorded.jsonl").write_text("\n".join(rec_lines) + "\n")
    derived("gmner", "g", gold_lines, rec_lines, 8, fine=False)
    derived("fmnerg", "f", gold_lines, rec_lines, 6, fine=True)


def derived(name, prefix, gold_lines, rec_lines, n, fine):
    """A dataset made of the first n SMNER tweets: ids renamed, masks dropped, fine types added."""
    folder = OUT / name
    folder.mkdir(exist_ok=True)
    k = 0
    for fname, lines, recorded in (("gold.jsonl", gold_lines, False), ("recorded.jsonl", rec_lines, True)):
        out = []
        for line in lines[:n]:
            t = json.loads(line)
            t["id"] = prefix + t["id"][1:]
            for e in t["entities"]:
                e.pop("masks", None)
                if recorded:
                    e["uid"] = t["id"] + e["uid"][len(t["image"]) - 4:]
                if fine:
                    ft = FINE[e["text"]]
                    if recorded:
                        k += 1
                        if k % 4 == 0:
                            ft = SIBLING[ft]
                    e["fine_type"] = ft
            out.append(json.dumps(t))
        (folder / fname).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
