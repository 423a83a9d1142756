"""Reference answers from pycocotools for tests/it/geometry.rs (the Rust COCO RLE cross-check).

Usage: coco_crosscheck.py CASES.json ANSWERS.json

CASES.json is written by the Rust test; every mask is given column-major as a string of '0'/'1'.
For each case this script computes what pycocotools (2.0.x, maskApi.c) says, and also decodes the
strings the Rust side produced, so the test can compare both directions. Only numpy and
pycocotools are needed (scripts/install-python-deps.sh installs them into .venv).
"""

import json
import sys

import numpy as np
import pycocotools.mask as mask_utils


def to_str(counts):
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def mask_from_bits(bits, h, w):
    flat = np.frombuffer(bits.encode("ascii"), dtype=np.uint8) - ord("0")
    # Column-major bits: reshape as (w, h) and transpose to the (h, w) image.
    return np.asfortranarray(flat.reshape(w, h).T.astype(np.uint8))


def bits_from_mask(m):
    return "".join("1" if v else "0" for v in np.asarray(m).flatten(order="F"))


def rle_answer(rle):
    return {
        "counts": to_str(rle["counts"]),
        "area": int(mask_utils.area(rle)),
        "bbox_xywh": [float(v) for v in mask_utils.toBbox(rle)],
    }


def decode_rust(h, w, counts):
    return bits_from_mask(mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii")}))


def main():
    cases_path, answers_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)

    masks = []
    rles = []
    for case in cases["masks"]:
        h, w = case["h"], case["w"]
        m = mask_from_bits(case["bits"], h, w)
        rle = mask_utils.encode(m)
        rles.append(rle)
        ans = rle_answer(rle)
        ans["decoded_rust"] = decode_rust(h, w, case["rust_counts"])
        # Uncompressed runs -> compressed string, as COCO.annToRLE does for iscrowd annotations.
        ans["from_runs"] = to_str(
            mask_utils.frPyObjects({"size": [h, w], "counts": case["rust_runs"]}, h, w)["counts"]
        )
        masks.append(ans)

    ious = []
    for a, b in cases["iou_pairs"]:
        ious.append(float(mask_utils.iou([rles[a]], [rles[b]], [0])[0][0]))

    merges = []
    for group in cases["merge_groups"]:
        union = mask_utils.merge([rles[i] for i in group], intersect=False)
        inter = mask_utils.merge([rles[i] for i in group], intersect=True)
        merges.append({"union": to_str(union["counts"]), "intersection": to_str(inter["counts"])})

    polygons = []
    for case in cases["polygons"]:
        h, w = case["h"], case["w"]
        parts = mask_utils.frPyObjects(case["polys"], h, w)
        rle = mask_utils.merge(parts) if len(parts) > 1 else parts[0]
        ans = rle_answer(rle)
        ans["decoded_rust"] = decode_rust(h, w, case["rust_counts"])
        polygons.append(ans)

    boxes = []
    for case in cases["boxes"]:
        h, w = case["h"], case["w"]
        x1, y1, x2, y2 = case["xyxy"]
        rle = mask_utils.frPyObjects(np.array([[x1, y1, x2 - x1, y2 - y1]], dtype=np.float64), h, w)[0]
        boxes.append(rle_answer(rle))

    with open(answers_path, "w") as f:
        json.dump({"masks": masks, "ious": ious, "merges": merges, "polygons": polygons, "boxes": boxes}, f)


if __name__ == "__main__":
    main()
