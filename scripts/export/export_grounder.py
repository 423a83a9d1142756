#!/usr/bin/env python3
"""Export an OWL-ViT checkpoint (`OwlViTForObjectDetection`) as a riveg-bench single-pass
grounder: image + one text query per entity -> the query's top-1 box and its score.

The graph runs the detector once for all of a tweet's queries (pixel_values [1, 3, H, W],
input_ids / attention_mask [num_queries, sequence]), takes for each query the patch with the
highest class logit, and outputs `boxes` [n, 4] (cx, cy, w, h normalised to the model input, as
`pred_boxes`) and `scores` [n] (sigmoid of that logit, as `post_process_object_detection`).
riveg-bench maps the box to original pixels like `post_process_object_detection` with
target_sizes = the image size (corners = centre -/+ half size, times width/height), then clamps
it to the image.

OWLv2 (`Owlv2ForObjectDetection`) pads the image to a square (grey) before resizing, which the
manifest's [preprocess] cannot express yet; Grounding DINO needs its own text-to-query mapping.
Neither is exported here.

Usage: .venv-export/bin/python scripts/export/export_grounder.py --model PATH_OR_ID --name NAME
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import OwlViTForObjectDetection, OwlViTProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import export_query_image_model, save_tokenizer, sha256, write_manifest  # noqa: E402
from export_entailer import image_preprocess  # noqa: E402

SAMPLE_QUERIES = ["a photo of a singer", "a red car", "a football team"]


class TopBox(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        logits = out.logits[0]  # [patches, queries]
        best, index = logits.max(dim=0)
        boxes = out.pred_boxes[0].index_select(0, index)
        return boxes, torch.sigmoid(best)


def export(model_id, name, models_dir: Path, header=None):
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    model = OwlViTForObjectDetection.from_pretrained(model_id, local_files_only=True).eval()
    processor = OwlViTProcessor.from_pretrained(model_id, local_files_only=True)
    preprocess = image_preprocess(processor.image_processor)
    wrapper = TopBox(model)
    export_query_image_model(
        wrapper,
        processor.tokenizer,
        preprocess["image_size"],
        out / "grounder.onnx",
        ["boxes", "scores"],
        f"{name} grounder",
        SAMPLE_QUERIES,
    )

    save_tokenizer(processor.tokenizer, out / "tokenizer.json")
    rel = out.relative_to(models_dir)
    header = header or f"Exported by scripts/export/export_grounder.py from {model_id}."
    sections = {
        "tokenizer": {
            "path": str(rel / "tokenizer.json"),
            "max_length": int(model.config.text_config.max_position_embeddings),
            "vocab_size": int(model.config.text_config.vocab_size),
            "sha256": sha256(out / "tokenizer.json"),
        },
        "preprocess": preprocess,
        "boxes": {"format": "cxcywh", "units": "normalized"},
    }
    manifest = write_manifest(
        models_dir / f"{name}.toml", header, name, "grounder", {"main": (rel / "grounder.onnx", {})}, sections
    )
    print(f"wrote {manifest}")
    return manifest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--models-dir", default="models", type=Path)
    a = p.parse_args()
    export(a.model, a.name, a.models_dir)


if __name__ == "__main__":
    main()
