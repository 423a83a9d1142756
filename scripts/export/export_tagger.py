#!/usr/bin/env python3
"""Export a token-classification model (BERT, RoBERTa, XLM-R, ...) as a riveg-bench tagger.

Writes `<out>/<name>/tagger.onnx` (dynamic batch and sequence axes; inputs input_ids,
attention_mask and, when the model has segments, token_type_ids so a second segment can carry the
auxiliary knowledge of PGIM-style taggers), `tokenizer.json`, optionally `crf.json`, and the
manifest `<manifests>/<name>.toml` (sha256, tensors, tokenizer, labels, CRF). Then runs the ONNX
file and PyTorch on sample inputs (one segment and two segments) and prints the max abs diff.

CRF: AdaSeq/PGIM-style taggers keep `crf.transitions` [from][to], `crf.start_transitions` and
`crf.end_transitions` in the checkpoint's state dict (pytorch-crf names); `--crf-state-dict`
reads them (a .bin/.pt torch file or .safetensors), `--crf-prefix` picks the module name.

Labels come from the model config's id2label (override with --labels O,B-PER,...).

Usage (the checkpoint is a local folder or a model id already in the local HF cache; nothing is
downloaded by this script):
  .venv-export/bin/python scripts/export/export_tagger.py --model PATH_OR_ID --name my-tagger \
      [--crf-state-dict pytorch_model.bin --crf-prefix crf.] [--max-length 512]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compare_outputs, export_onnx, ort_session, save_tokenizer, sha256, write_manifest  # noqa: E402

SAMPLE_TWEET = ["RT", "@", "Taylor", "Swift", "at", "the", "Oscars", "in", "Paris", "!"]
SAMPLE_KNOWLEDGE = "Taylor Swift is an American singer ; the Oscars are film awards ."


class Logits(torch.nn.Module):
    def __init__(self, model, with_segments):
        super().__init__()
        self.model = model
        self.with_segments = with_segments

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_segments:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).logits


def read_crf(path: Path, prefix: str, labels):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    try:
        crf = {
            "transitions": state[prefix + "transitions"].double().tolist(),
            "start": state[prefix + "start_transitions"].double().tolist(),
            "end": state[prefix + "end_transitions"].double().tolist(),
        }
    except KeyError as e:
        found = sorted(k for k in state if "transition" in k)
        raise SystemExit(f"{path}: no {e} in the state dict (transition keys found: {found}); set --crf-prefix")
    n = len(labels)
    if len(crf["transitions"]) != n or len(crf["start"]) != n or len(crf["end"]) != n:
        raise SystemExit(f"{path}: CRF has {len(crf['transitions'])} tags but the model has {n} labels")
    return crf


def scheme_of(labels):
    return "bioes" if any(l[:2] in ("E-", "S-") for l in labels) else "bio"


def export(model_id, name, models_dir: Path, max_length=512, crf_state_dict=None, crf_prefix="crf.", labels=None, header=None):
    out = models_dir / "arch" / name.removeprefix("arch-")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=True)
    if not tokenizer.is_fast:
        raise SystemExit("need a fast tokenizer (tokenizer.json) for the Rust side")
    model = AutoModelForTokenClassification.from_pretrained(model_id, local_files_only=True).eval()
    labels = labels or [model.config.id2label[i] for i in range(model.config.num_labels)]
    with_segments = getattr(model.config, "type_vocab_size", 1) > 1

    # Check inputs: one segment, two segments (tweet + auxiliary knowledge), a padded batch of two.
    single = tokenizer(SAMPLE_TWEET, is_split_into_words=True, return_tensors="pt")
    pair = tokenizer(" ".join(SAMPLE_TWEET), SAMPLE_KNOWLEDGE, return_tensors="pt")
    batch = tokenizer([SAMPLE_TWEET, SAMPLE_TWEET[2:5]], is_split_into_words=True, padding=True, return_tensors="pt")
    wrapper = Logits(model, with_segments)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_segments else [])
    args = tuple(single[n] if n in single else torch.zeros_like(single["input_ids"]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch", 1: "sequence"}
    onnx_path = export_onnx(wrapper, args, out / "tagger.onnx", names, ["logits"], axes)

    session = ort_session(onnx_path)
    for label, enc in (("one segment", single), ("two segments", pair), ("padded batch of 2", batch)):
        feeds = {n: enc[n].numpy() if n in enc else np.zeros_like(enc["input_ids"].numpy()) for n in names}
        with torch.no_grad():
            expected = wrapper(*[torch.from_numpy(feeds[n]) for n in names]).numpy()
        (got,) = session.run(["logits"], feeds)
        compare_outputs(f"{name} tagger ({label})", {"logits": expected}, {"logits": got})

    save_tokenizer(tokenizer, out / "tokenizer.json")
    rel = out.relative_to(models_dir)
    positions = getattr(model.config, "max_position_embeddings", max_length)
    if "roberta" in model.config.model_type:
        positions -= model.config.pad_token_id + 1  # RoBERTa-family position ids start after padding_idx
    sections = {
        "tokenizer": {
            "path": str(rel / "tokenizer.json"),
            "max_length": int(min(max_length, positions)),
            "vocab_size": int(model.config.vocab_size),
            "sha256": sha256(out / "tokenizer.json"),
        },
        "labels": {"scheme": scheme_of(labels), "names": labels},
    }
    if crf_state_dict:
        crf = read_crf(Path(crf_state_dict), crf_prefix, labels)
        (out / "crf.json").write_text(json.dumps(crf))
        sections["crf"] = {"path": str(rel / "crf.json"), "sha256": sha256(out / "crf.json")}
    header = header or f"Exported by scripts/export/export_tagger.py from {model_id}."
    manifest = write_manifest(
        models_dir / f"{name}.toml", header, name, "tagger", {"main": (rel / "tagger.onnx", {})}, sections
    )
    print(f"wrote {manifest}")
    return manifest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local checkpoint folder or cached HF model id")
    p.add_argument("--name", required=True, help="manifest name, e.g. arch-tagger (files go to models/arch/<name>/)")
    p.add_argument("--models-dir", default="models", type=Path)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--crf-state-dict", help="checkpoint file with crf.transitions / start / end")
    p.add_argument("--crf-prefix", default="crf.")
    p.add_argument("--labels", help="comma-separated labels in output order (default: config id2label)")
    a = p.parse_args()
    export(a.model, a.name, a.models_dir, a.max_length, a.crf_state_dict, a.crf_prefix, a.labels.split(",") if a.labels else None)


if __name__ == "__main__":
    main()
