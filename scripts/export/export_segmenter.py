#!/usr/bin/env python3
"""Export a SAM-family checkpoint (Hugging Face `SamModel`: SAM ViT-B/L/H, SlimSAM; MobileSAM
once converted to `SamModel`) as a riveg-bench segmenter: two graphs.

* `sam_encoder.onnx`: pixel_values [1, 3, S, S] -> image_embeddings [1, C, S/p, S/p]
  (`SamModel.get_image_embeddings`), run once per image.
* `sam_decoder.onnx`: image_embeddings + box [1, 4] (x1, y1, x2, y2 in model-input pixels, i.e.
  after `SamProcessor`'s longest-side coordinate transform) -> masks [1, 1, 4*S/p, 4*S/p]
  low-resolution logits (`multimask_output=False`) and iou_scores [1, 1].

The manifest's [preprocess] is `SamImageProcessor`'s: longest side to S (bilinear, Pillow),
rescale 1/255, ImageNet mean/std, zero padding bottom/right to S x S. riveg-bench upsamples the
low-resolution logits like `post_process_masks` (bilinear to S x S, crop the padding, bilinear
to the original size, threshold 0).

Usage (nothing is downloaded; MODEL is a local folder or a cached id such as facebook/sam-vit-base):
  .venv-export/bin/python scripts/export/export_segmenter.py --model MODEL --name my-sam
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import SamModel, SamProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compare_outputs, export_onnx, ort_session, write_manifest  # noqa: E402


class Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.get_image_embeddings(pixel_values)


class BoxDecoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, box):
        out = self.model(image_embeddings=image_embeddings, input_boxes=box.reshape(1, 1, 4), multimask_output=False)
        masks = out.pred_masks  # [1, 1, 1, h, w]
        return masks.reshape(1, 1, masks.shape[-2], masks.shape[-1]), out.iou_scores.reshape(1, 1)


def export(model_id, name, models_dir: Path, header=None):
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    model = SamModel.from_pretrained(model_id, local_files_only=True).eval()
    processor = SamProcessor.from_pretrained(model_id, local_files_only=True)
    ip = processor.image_processor
    size = int(model.config.vision_config.image_size)
    if ip.size.get("longest_edge") != size or ip.pad_size != {"height": size, "width": size}:
        raise SystemExit(f"processor size {ip.size} / pad {ip.pad_size} does not match the model's {size}px input")

    encoder, decoder = Encoder(model), BoxDecoder(model)
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    enc_path = export_onnx(encoder, (pixels,), out / "sam_encoder.onnx", ["pixel_values"], ["image_embeddings"], None)
    with torch.no_grad():
        emb = encoder(pixels)
    box = torch.tensor([[0.1 * size, 0.2 * size, 0.7 * size, 0.9 * size]], dtype=torch.float32)
    dec_path = export_onnx(decoder, (emb, box), out / "sam_decoder.onnx", ["image_embeddings", "box"], ["masks", "iou_scores"], None)

    (got_emb,) = ort_session(enc_path).run(None, {"pixel_values": pixels.numpy()})
    compare_outputs(f"{name} encoder", {"image_embeddings": emb.numpy()}, {"image_embeddings": got_emb})
    dec = ort_session(dec_path)
    for b in ([[0.1, 0.2, 0.7, 0.9]], [[0.5, 0.05, 0.95, 0.5]]):
        box = torch.tensor(b, dtype=torch.float32) * size
        with torch.no_grad():
            masks, iou = decoder(emb, box)
        got_masks, got_iou = dec.run(None, {"image_embeddings": emb.numpy(), "box": box.numpy()})
        compare_outputs(f"{name} decoder", {"masks": masks.numpy(), "iou_scores": iou.numpy()}, {"masks": got_masks, "iou_scores": got_iou})

    rel = out.relative_to(models_dir)
    sections = {
        "preprocess": {
            "image_size": [size, size],
            "resize": "longest_side",
            "filter": "bilinear",
            "rescale": float(ip.rescale_factor),
            "mean": [float(x) for x in ip.image_mean],
            "std": [float(x) for x in ip.image_std],
        }
    }
    header = header or f"Exported by scripts/export/export_segmenter.py from {model_id}."
    manifest = write_manifest(
        models_dir / f"{name}.toml",
        header,
        name,
        "segmenter",
        {"encoder": (rel / "sam_encoder.onnx", {}), "decoder": (rel / "sam_decoder.onnx", {})},
        sections,
    )
    print(f"wrote {manifest}")
    return manifest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local SamModel folder or cached HF model id")
    p.add_argument("--name", required=True)
    p.add_argument("--models-dir", default="models", type=Path)
    a = p.parse_args()
    export(a.model, a.name, a.models_dir)


if __name__ == "__main__":
    main()
