#!/usr/bin/env python3
"""Export an open-vocabulary detector as a riveg-bench single-pass grounder: image + one text
query per entity -> the query's top-1 box and its score. Two families (`--family`):

* `owlvit` (default; `OwlViTForObjectDetection`): the image is stretched to the model size with
  Pillow (`OwlViTImageProcessor`); riveg-bench maps the box to original pixels like
  `post_process_object_detection` with target_sizes = the image size (corners = centre -/+ half
  size, times width/height), then clamps it to the image.
* `owlv2` (`Owlv2ForObjectDetection`, e.g. google/owlv2-base-patch16-ensemble): the
  `Owlv2ImageProcessor` rescales to 0..1, pads bottom/right to a square with 0.5 grey, resizes the
  square with its own skimage-style resize (Gaussian anti-aliasing, then scipy.ndimage.zoom
  order 1; not Pillow) and normalises. The manifest says `resize = "pad_square"`, `pad_value =
  0.5`, `filter = "skimage_linear"`; boxes are relative to the padded square, so riveg-bench
  scales them by the longer image side, as Owlv2ImageProcessor.post_process_object_detection
  does, then clamps them to the image. Its image processor needs scipy (the pinned requirements).

The graph runs the image side of the detector once per image (pixel_values
[num_images, 3, H, W]) and the text side once per query (input_ids / attention_mask
[num_queries, sequence]); image_index [num_queries] (int64) says which image each query belongs
to, so riveg-bench can ground the queries of several tweets in one run (a tweet alone: one image,
image_index all 0). It takes for each query the patch of its image with the highest class logit
(the class head of OwlViTForObjectDetection, split into its per-image and per-query parts), and
outputs `boxes` [n, 4] (cx, cy, w, h normalised to the model input, as
`pred_boxes`) and `scores` [n] (sigmoid of that logit, as `post_process_object_detection`;
OWLv2's objectness head is not used, as in that function).

Grounding DINO needs its own text-to-query mapping; it is not exported here.

Usage: .venv-export/bin/python scripts/export/export_grounder.py [--family owlvit|owlv2] --model PATH_OR_ID --name NAME
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import Owlv2ForObjectDetection, Owlv2Processor, OwlViTForObjectDetection, OwlViTProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import export_query_image_model, save_tokenizer, text_tokenizer_section, write_manifest  # noqa: E402
from export_entailer import image_preprocess  # noqa: E402

SAMPLE_QUERIES = ["a photo of a singer", "a red car", "a football team"]


class TopBox(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, input_ids, attention_mask, image_index):
        # What OwlViTForObjectDetection.forward (Owlv2's too) computes, with the image side run
        # once per image and each query scored against its own image's patches only.
        model, head = self.model, self.model.class_head
        feature_map = model.image_embedder(pixel_values=pixel_values)[0]  # [images, s, s, d]
        image_feats = feature_map.flatten(1, 2)  # [images, patches, d]
        boxes = model.box_predictor(image_feats, feature_map)  # [images, patches, 4]
        # class_head.forward, split into its per-image part (once per image) ...
        image_class = head.dense0(image_feats)
        image_class = image_class / (torch.linalg.norm(image_class, dim=-1, keepdim=True) + 1e-6)
        shift = head.logit_shift(image_feats)[..., 0]  # [images, patches]
        scale = head.elu(head.logit_scale(image_feats))[..., 0] + 1
        # ... and its per-query part: the text embeds of OwlViTModel.forward (projected, then
        # normalised), normalised again by the head, against the query's image.
        base = model.owlv2 if hasattr(model, "owlv2") else model.owlvit
        query = base.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        query = query / torch.linalg.norm(query, ord=2, dim=-1, keepdim=True)
        query = query / (torch.linalg.norm(query, dim=-1, keepdim=True) + 1e-6)
        logits = torch.einsum("npd,nd->np", image_class.index_select(0, image_index), query)
        logits = (logits + shift.index_select(0, image_index)) * scale.index_select(0, image_index)
        # As the model's query_mask: a query whose first token is 0 is padding.
        logits = torch.where(input_ids[:, :1] > 0, logits, torch.finfo(logits.dtype).min)
        best, index = logits.max(dim=1)  # the best patch of each query
        patches = boxes.shape[1]
        chosen = boxes.flatten(0, 1).index_select(0, image_index * patches + index)
        return chosen, torch.sigmoid(best)


def owlv2_preprocess(ip):
    """The manifest's [preprocess] for an Owlv2ImageProcessor (its `resample` is unused: the
    processor's resize is its own, see the docstring)."""
    steps = {"do_rescale": ip.do_rescale, "do_pad": ip.do_pad, "do_resize": ip.do_resize, "do_normalize": ip.do_normalize}
    if not all(steps.values()):
        raise SystemExit(f"Owlv2ImageProcessor with {steps}: riveg-bench implements the default pipeline only")
    return {
        "image_size": [int(ip.size["height"]), int(ip.size["width"])],
        "resize": "pad_square",
        "pad_value": 0.5,
        "filter": "skimage_linear",
        "rescale": float(ip.rescale_factor),
        "mean": [float(x) for x in ip.image_mean],
        "std": [float(x) for x in ip.image_std],
    }


FAMILIES = {
    "owlvit": (OwlViTForObjectDetection, OwlViTProcessor, image_preprocess),
    "owlv2": (Owlv2ForObjectDetection, Owlv2Processor, owlv2_preprocess),
}


def export(model_id, name, models_dir: Path, header=None, family="owlvit"):
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    model_class, processor_class, preprocess_of = FAMILIES[family]
    model = model_class.from_pretrained(model_id, local_files_only=True).eval()
    processor = processor_class.from_pretrained(model_id, local_files_only=True)
    preprocess = preprocess_of(processor.image_processor)
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
    header = header or f"Exported by scripts/export/export_grounder.py --family {family} from {model_id}."
    if family == "owlv2":
        header += (
            "\nOWLv2: boxes are relative to the image padded to a square (bottom/right), so riveg-bench"
            "\nscales them by the longer image side, as Owlv2ImageProcessor.post_process_object_detection."
        )
    sections = {
        "tokenizer": text_tokenizer_section(out, rel, model.config.text_config),
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
    p.add_argument("--family", choices=sorted(FAMILIES), default="owlvit")
    a = p.parse_args()
    export(a.model, a.name, a.models_dir, family=a.family)


if __name__ == "__main__":
    main()
