#!/usr/bin/env python3
"""Export an image-text matching checkpoint as a riveg-bench visual-entailment stage: image + one
query per entity -> P(entailed). Two families (`--family`):

* `clip` (default; `CLIPModel`: OpenAI CLIP, OpenCLIP ports, tiny configs). CLIP gives a
  similarity, not a probability. The graph computes
      cosine = <image_embeds, text_embeds> / (|image_embeds| |text_embeds|)
      probability = sigmoid(scale * (cosine - threshold))
  with `threshold` and `scale` calibrated by the user on labelled VE pairs (e.g. the threshold
  that maximises accuracy on a dev split, the scale from a logistic fit; default scale: CLIP's own
  logit_scale.exp()). Both are written into the manifest's header comment. Outputs: `probability`
  [n] (what the stage reads) and `cosine` [n].
* `blip-itm` (`BlipForImageTextRetrieval`, e.g. Salesforce/blip-itm-base-coco): the ITM head,
  as `model(input_ids, pixel_values, use_itm_head=True)`. Output `logits` [n, 2]; the manifest's
  `[entailment] positive_index = 1` makes riveg-bench read probability = softmax(logits)[1], the
  ITM "match" class (no calibration: the head is trained as a classifier). The vision tower runs
  once per image and its embeddings are shared by that image's queries inside the graph.

Inputs: pixel_values [num_images, 3, H, W], input_ids and attention_mask [num_queries, sequence],
and image_index [num_queries] (int64: the row of pixel_values each query belongs to). The image
encoder runs once per image and its features are gathered per query, so riveg-bench can score the
queries of several tweets (one image each) in one run; a tweet alone is one image with
image_index all 0. The manifest's [preprocess] is the checkpoint's image
processor (CLIPImageProcessor, BlipImageProcessor: a plain resize to H x W with Pillow, rescale,
mean/std); riveg-bench resizes like Pillow but has no centre crop yet: a processor with
`shortest_edge` + centre crop is refused (set size to {height, width} and do_center_crop=False to
export anyway, knowing the preprocessing then differs from the checkpoint's own).

Usage: .venv-export/bin/python scripts/export/export_entailer.py --model PATH_OR_ID --name NAME \
           --threshold 0.25 [--scale 100]
       .venv-export/bin/python scripts/export/export_entailer.py --family blip-itm --model PATH_OR_ID --name NAME
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import BlipForImageTextRetrieval, BlipProcessor, CLIPModel, CLIPProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import export_query_image_model, save_tokenizer, text_tokenizer_section, write_manifest  # noqa: E402

SAMPLE_QUERIES = ["a photo of a singer", "the city of paris at night", "a football team"]


class ClipEntailer(torch.nn.Module):
    def __init__(self, model, threshold, scale):
        super().__init__()
        self.model = model
        self.threshold = float(threshold)
        self.scale = float(scale)

    def forward(self, pixel_values, input_ids, attention_mask, image_index):
        # Each image once, then its features gathered for the queries that belong to it.
        image = self.model.get_image_features(pixel_values=pixel_values).index_select(0, image_index)
        text = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        cosine = (text * image).sum(dim=-1)
        return torch.sigmoid(self.scale * (cosine - self.threshold)), cosine


class BlipItmEntailer(torch.nn.Module):
    """BlipForImageTextRetrieval.forward(use_itm_head=True), with the vision tower run once per
    image and its output gathered for the queries of that image (`image_index`; the output is the
    same for every copy of an image)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, input_ids, attention_mask, image_index):
        image = self.model.vision_model(pixel_values=pixel_values)[0]
        image = image.index_select(0, image_index)
        image_atts = torch.ones_like(image[..., 0], dtype=torch.long)
        text = self.model.text_encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image,
            encoder_attention_mask=image_atts,
            return_dict=True,
        ).last_hidden_state
        return (self.model.itm_head(text[:, 0, :]),)


def image_preprocess(ip):
    if getattr(ip, "do_center_crop", False) or "height" not in ip.size:
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
    """The CLIP family (see the docstring)."""
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
        "tokenizer": text_tokenizer_section(out, rel, model.config.text_config),
        "preprocess": preprocess,
    }
    manifest = write_manifest(
        models_dir / f"{name}.toml", header, name, "entailer", {"main": (rel / "entailer.onnx", {})}, sections
    )
    print(f"wrote {manifest}")
    return manifest


def export_blip_itm(model_id, name, models_dir: Path, header=None):
    """The BLIP ITM family: logits [n, 2], probability = softmax(logits)[1]."""
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    model = BlipForImageTextRetrieval.from_pretrained(model_id, local_files_only=True).eval()
    processor = BlipProcessor.from_pretrained(model_id, local_files_only=True)
    preprocess = image_preprocess(processor.image_processor)
    export_query_image_model(
        BlipItmEntailer(model),
        processor.tokenizer,
        preprocess["image_size"],
        out / "entailer.onnx",
        ["logits"],
        f"{name} entailer",
        SAMPLE_QUERIES,
    )

    save_tokenizer(processor.tokenizer, out / "tokenizer.json")
    rel = out.relative_to(models_dir)
    header = (header or f"Exported by scripts/export/export_entailer.py --family blip-itm from {model_id}.") + (
        "\nBLIP image-text matching head: probability = softmax(logits)[positive_index = 1]"
        "\n(BlipForImageTextRetrieval, use_itm_head=True; class 1 = the text matches the image)."
    )
    sections = {
        "tokenizer": text_tokenizer_section(out, rel, model.config.text_config),
        "preprocess": preprocess,
        "entailment": {"positive_index": 1},
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
    p.add_argument("--family", choices=["clip", "blip-itm"], default="clip")
    p.add_argument("--threshold", type=float, help="clip: cosine at which P(entailed) = 0.5 (required)")
    p.add_argument("--scale", type=float, help="clip: slope of the sigmoid (default: the model's logit_scale.exp())")
    a = p.parse_args()
    if a.family == "blip-itm":
        if a.threshold is not None or a.scale is not None:
            p.error("--threshold/--scale apply to --family clip only (BLIP ITM's head is a classifier)")
        export_blip_itm(a.model, a.name, a.models_dir)
        return
    if a.threshold is None:
        p.error("--family clip needs --threshold (the calibrated cosine at which P = 0.5)")
    export(a.model, a.name, a.models_dir, a.threshold, a.scale)


if __name__ == "__main__":
    main()
