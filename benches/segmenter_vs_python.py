"""The Python reference for benches/segmenter.rs: the same per-tweet work outside the models, done
the way a transformers user does it (issue 15).

  decode      Image.open(path).convert("RGB")
  preprocess  SamProcessor(images=img, input_boxes=[boxes], return_tensors="pt"): Pillow resize
              (longest side 1024, bilinear), rescale, normalise, pad to 1024 x 1024, box transform
  mask        SamImageProcessor.post_process_masks of the boxes' 256 x 256 low-res logits
              (bilinear to 1024, crop, bilinear to the original size, > 0), then
              pycocotools.mask.encode per mask (column-major RLE)
  tweet       all of the above for one tweet with two boxes (post_process_masks batched)

Same photos, boxes and logits formula as the Rust bench. Prints one JSON object: median
microseconds per benchmark id (the ids of benches/segmenter.rs), and the versions used.

Usage: PYTHON benches/segmenter_vs_python.py PHOTO... (run by benches/segmenter_vs_python.sh;
needs torch, transformers, Pillow, numpy, pycocotools). SEGMENTER_PY_THREADS sets torch's
intra-op threads (default 1: the Rust side is single-threaded).
"""

import json
import math
import os
import sys
import timeit

import numpy as np
import PIL
import torch
import transformers
import pycocotools
import pycocotools.mask as mask_utils
from PIL import Image
from transformers import SamImageProcessor, SamProcessor

LOW_RES = 256


def boxes(w, h):
    return [
        [0.2 * w, 0.15 * h, 0.75 * w, 0.9 * h],
        [0.05 * w, 0.05 * h, 0.45 * w, 0.5 * h],
    ]


def logits(box, w, h, rw, rh):
    """The Rust bench's ellipse: positive inside the box's inscribed ellipse, plus a ripple."""
    sx, sy = rw / w, rh / h
    x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    scale = LOW_RES / 1024
    cx, cy = (x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale
    rx, ry = max((x2 - x1) / 2 * scale, 1.0), max((y2 - y1) / 2 * scale, 1.0)
    ys, xs = np.mgrid[0:LOW_RES, 0:LOW_RES].astype(np.float64)
    dx, dy = (xs + 0.5 - cx) / rx, (ys + 0.5 - cy) / ry
    ripple = 0.3 * np.sin(xs * 0.37) * np.cos(ys * 0.23)
    return (8.0 * (1.0 - dx * dx - dy * dy) + ripple).astype(np.float32)


def median_us(fn, number, repeat=9):
    fn()  # warm-up
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return sorted(times)[len(times) // 2] / number * 1e6


def main():
    torch.set_num_threads(int(os.environ.get("SEGMENTER_PY_THREADS", "1")))
    processor = SamProcessor(SamImageProcessor())
    image_processor = processor.image_processor
    results = {}
    for path in sys.argv[1:]:
        img = Image.open(path).convert("RGB")
        w, h = img.size
        stem = os.path.splitext(os.path.basename(path))[0]
        label = f"{stem}_{w}x{h}"
        bxs = boxes(w, h)
        inputs = processor(images=img, input_boxes=[bxs], return_tensors="pt")
        rh, rw = (int(v) for v in inputs["reshaped_input_sizes"][0])
        low = torch.from_numpy(np.stack([logits(b, w, h, rw, rh) for b in bxs])[:, None])
        original_sizes = inputs["original_sizes"]
        reshaped_sizes = inputs["reshaped_input_sizes"]
        number = 3 if w * h > 100_000 else 20

        def decode():
            return Image.open(path).convert("RGB")

        def preprocess():
            return processor(images=img, input_boxes=[bxs], return_tensors="pt")

        def encode(masks):
            return [
                mask_utils.encode(np.asfortranarray(m[0].numpy().astype(np.uint8)))
                for m in masks
            ]

        def mask_one():
            masks = image_processor.post_process_masks(
                [low[:1]], original_sizes, reshaped_sizes
            )[0]
            return encode(masks)

        def tweet():
            image = Image.open(path).convert("RGB")
            inputs = processor(images=image, input_boxes=[bxs], return_tensors="pt")
            masks = image_processor.post_process_masks(
                [low], inputs["original_sizes"], inputs["reshaped_input_sizes"]
            )[0]
            return encode(masks)

        # The masks agree with what the Rust bench computes on the same logits (same area).
        areas = [int(m.sum()) for m in image_processor.post_process_masks(
            [low], original_sizes, reshaped_sizes)[0][:, 0]]
        results[f"decode/{label}"] = median_us(decode, number)
        results[f"preprocess/{label}"] = median_us(preprocess, number)
        results[f"mask_per_box/{label}"] = median_us(mask_one, number)
        results[f"tweet_2_boxes/{label}"] = median_us(tweet, number)
        results[f"areas/{label}"] = areas
    results["versions"] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "pycocotools": getattr(pycocotools, "__version__", "?"),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
