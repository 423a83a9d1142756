#!/usr/bin/env python3
"""Export a CLIP checkpoint (`CLIPModel`: OpenAI CLIP, OpenCLIP ports, tiny configs) as a
riveg-bench visual-entailment stage: image + one query per entity -> P(entailed).

CLIP gives a similarity, not a probability. The graph computes
    cosine = <image_embeds, text_embeds> / (|image_embeds| |text_embeds|)
    probability = sigmoid(scale * (cosine - threshold))
with `threshold` and `scale` calibrated by the user on labelled VE pairs (e.g. the threshold that
maximises accuracy on a dev split, the scale from a logistic fit; default scale: CLIP's own
logit_scale.exp()). Both are written into the manifest's header comment. Outputs: `probability`
[n] (what the stage reads) and `cosine` [n].

Inputs: pixel_values [1, 3, H, W] (one image per tweet, shared by all queries), input_ids and
attention_mask [num_queries, sequence]. The manifest's [preprocess] is the CLIPImageProcessor's;
riveg-bench resizes like Pillow but has no centre crop yet: a processor with `shortest_edge` +
centre crop is refused (set size to {height, width} and do_center_crop=False to export anyway,
knowing the preprocessing then differs from the checkpoint's own).

A BLIP ITM model (`BlipForImageTextRetrieval`, use_itm_head=True) fits the same stage with a
`logits` [n, 2] output and positive_index = 1; it is not exported here (untested).

Usage: .venv-export/bin/python scripts/export/export_entailer.py --model PATH_OR_ID --name NAME \
           --threshold 0.25 [--scale 100]
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import CLIPModel, CLIPProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import export_query_image_model, save_tokenizer, sha256, write_manifest  # noqa: E402

SAMPLE_QUERIES = ["a photo of a singer", "the city of paris at night", "a football team"]


class ClipEntailer(torch.nn.Module):
    def __init__(self, model, threshold, scale):
        super().__init__()
        self.model = model
        self.threshold = float(threshold)
        self.scale = float(scale)

    def forward(self, pixel_values, input_ids, attention_mask):
        image = self.model.get_image_features(pixel_values=pixel_values)
        text = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        cosine = (text * image).sum(dim=-1)
        return torch.sigmoid(self.scale * (cosine - self.threshold)), cosine


def image_preprocess(ip):
    if ip.do_center_crop or "height" not in ip.size:
        raise SystemExit(
            f"image processor size {ip.size}, centre crop {ip.do_center_crop}: riveg-bench has no "
            "shortest-edge + centre-crop resize yet (see the docstring)"
        )
    filters = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "lanczos"}
    return {
        "image_size": [int(ip.size["height"]), int(ip.size["width"])],
        "resize": "stretch",
        "filter": filters[int(ip.resample)],
        "rescale": float(ip.rescale_factor),
        "mean": [float(x) for x in ip.image_mean],
        "std": [float(x) for x in ip.image_std],
    }


def export(model_id, name, models_dir: Path, threshold: float, scale=None, header=None):
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    model = CLIPModel.from_pretrained(model_id, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(model_id, local_files_only=True)
    scale = float(model.logit_scale.exp()) if scale is None else float(scale)
    preprocess = image_preprocess(processor.image_processor)
    wrapper = ClipEntailer(model, threshold, scale)
    export_query_image_model(
        wrapper,
        processor.tokenizer,
        preprocess["image_size"],
        out / "entailer.onnx",
        ["probability", "cosine"],
        f"{name} entailer",
        SAMPLE_QUERIES,
    )

    save_tokenizer(processor.tokenizer, out / "tokenizer.json")
    rel = out.relative_to(models_dir)
    header = (header or f"Exported by scripts/export/export_entailer.py from {model_id}.") + (
        f"\nprobability = sigmoid({scale!r} * (cosine(image, query) - {float(threshold)!r})):"
        "\nthreshold and scale are baked into the graph; re-export to recalibrate."
    )
    sections = {
        "tokenizer": {
            "path": str(rel / "tokenizer.json"),
            "max_length": int(model.config.text_config.max_position_embeddings),
            "vocab_size": int(model.config.text_config.vocab_size),
            "sha256": sha256(out / "tokenizer.json"),
        },
        "preprocess": preprocess,
    }
    manifest = write_manifest(
        models_dir / f"{name}.toml", header, name, "entailer", {"main": (rel / "entailer.onnx", {})}, sections
    )
    print(f"wrote {manifest}")
    return manifest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--models-dir", default="models", type=Path)
    p.add_argument("--threshold", type=float, required=True, help="cosine at which P(entailed) = 0.5")
    p.add_argument("--scale", type=float, help="slope of the sigmoid (default: the model's logit_scale.exp())")
    a = p.parse_args()
    export(a.model, a.name, a.models_dir, a.threshold, a.scale)


if __name__ == "__main__":
    main()
