"""pycocotools timings for the operations in benches/geometry.rs, for a rough side-by-side.

Usage: .venv/bin/python benches/geometry_pycocotools.py
Same inputs as the Rust bench (star-shaped polygons on 640x480 and 1280x960 images). Prints the
median of repeated timings in microseconds. Python call overhead is included, so small
operations look slower than the C code alone; compare orders of magnitude, not digits.
"""

import math
import timeit

import numpy as np
import pycocotools.mask as mask_utils

SIZES = [(480, 640), (960, 1280)]


def star(cx, cy, radius, vertices):
    xy = []
    for i in range(vertices):
        angle = 2 * math.pi * i / vertices
        r = radius * (1.0 if i % 2 == 0 else 0.6)
        xy += [cx + r * math.cos(angle), cy + r * math.sin(angle)]
    return xy


def median_us(fn, number=20, repeat=7):
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return sorted(times)[len(times) // 2] / number * 1e6


def main():
    for h, w in SIZES:
        a = mask_utils.frPyObjects([star(w * 0.45, h * 0.5, h * 0.35, 24)], h, w)[0]
        b = mask_utils.frPyObjects([star(w * 0.55, h * 0.45, h * 0.3, 16)], h, w)[0]
        pixels = np.asfortranarray(mask_utils.decode(a))
        label = f"{w}x{h}"
        rows = {
            "rle/encode_column_major": lambda: mask_utils.encode(pixels),
            "rle/decode_column_major": lambda: mask_utils.decode(a),
            "mask_iou/iou_runs": lambda: mask_utils.iou([a], [b], [0]),
            "mask_iou/union_runs": lambda: mask_utils.merge([a, b]),
            "polygon/to_rle_8_vertices": lambda: mask_utils.frPyObjects([star(w * 0.5, h * 0.5, h * 0.4, 8)], h, w),
            "polygon/to_rle_64_vertices": lambda: mask_utils.frPyObjects([star(w * 0.5, h * 0.5, h * 0.4, 64)], h, w),
            "polygon/from_bbox": lambda: mask_utils.frPyObjects(
                np.array([[w * 0.2 + 0.3, h * 0.1 + 0.7, w * 0.6 - 0.5, h * 0.8 - 1.1]]), h, w
            ),
        }
        for name, fn in rows.items():
            print(f"{name}/{label}: {median_us(fn):.1f} us")


if __name__ == "__main__":
    main()
