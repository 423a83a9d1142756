"""Shared helpers for the export scripts: manifest writing, ONNX-vs-PyTorch checks, hashing.

Nothing here downloads anything: checkpoints are local folders (or Hugging Face ids already in
the local cache). The manifest format is documented in src/runtime/manifest.rs.
"""

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

OPSET = 17


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def external_data_file(onnx_path: Path) -> Path:
    """Where `export_onnx` puts the weights of a graph saved with external data."""
    return onnx_path.with_name(onnx_path.name + ".data")


_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}


def tensor_specs(path: Path, roles: dict | None = None):
    """(inputs, outputs) of an ONNX file as manifest tensor tables, read from the graph itself."""
    model = onnx.load(str(path), load_external_data=False)
    roles = roles or {}

    def spec(v):
        dims = []
        for d in v.type.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "dim"))
        out = {"name": v.name, "dtype": _DTYPES[v.type.tensor_type.elem_type], "shape": dims}
        if v.name in roles:
            out["role"] = roles[v.name]
        return out

    inits = {i.name for i in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in inits]
    outputs = [spec(v) for v in model.graph.output]
    return inputs, outputs


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_manifest(path: Path, header: str, name: str, stage: str, models: dict, sections: dict):
    """Writes a manifest: `models` maps role -> (onnx path, roles) with paths relative to the
    manifest; `sections` maps a section name to a flat dict."""
    path = Path(path)
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines += [f"name = {json.dumps(name)}", f"stage = {json.dumps(stage)}", ""]
    for role, (onnx_path, roles) in models.items():
        full = path.parent / onnx_path
        inputs, outputs = tensor_specs(full, roles)
        lines += [f"[models.{role}]", f"path = {json.dumps(str(onnx_path))}", f"sha256 = {json.dumps(sha256(full))}"]
        data = external_data_file(full)
        if data.is_file():
            # Verified by riveg-bench like the graph, so the weights are part of the cache key.
            rel = Path(onnx_path).with_name(data.name)
            lines += [f"external_data = {json.dumps(str(rel))}", f"external_data_sha256 = {json.dumps(sha256(data))}"]
        lines.append("")
        for kind, table in (("inputs", inputs), ("outputs", outputs)):
            for t in table:
                lines.append(f"[[models.{role}.{kind}]]")
                for key in ("name", "dtype", "shape", "role"):
                    if key in t:
                        lines.append(f"{key} = {_toml_value(t[key])}")
                lines.append("")
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def text_tokenizer_section(out: Path, rel: Path, text_config) -> dict:
    """The manifest's [tokenizer] section of a query-image model (VE, VG) whose tokenizer.json
    `save_tokenizer` wrote into `out` (`rel`: `out` relative to the manifest)."""
    return {
        "path": str(rel / "tokenizer.json"),
        "max_length": int(text_config.max_position_embeddings),
        "vocab_size": int(text_config.vocab_size),
        "sha256": sha256(out / "tokenizer.json"),
    }


def save_tokenizer(tokenizer, path: Path) -> Path:
    """The fast tokenizer's tokenizer.json without the padding/truncation state that calls leave
    on it (the Rust side sets both from the manifest)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(path))
    return Path(path)


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_outputs(label: str, torch_outputs: dict, onnx_outputs: dict, tolerance: float = 1e-4, what: str = "ONNX vs PyTorch") -> float:
    """Prints and returns the max abs difference between PyTorch and ONNX Runtime outputs (or
    whatever two sets `what` names); fails loudly above `tolerance`."""
    worst = 0.0
    for name, expected in torch_outputs.items():
        got = onnx_outputs[name]
        expected = np.asarray(expected)
        if got.shape != expected.shape:
            raise SystemExit(f"{label}: output {name} has shape {got.shape}, expected {expected.shape} ({what})")
        diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if got.size else 0.0
        print(f"{label}: {name} max abs diff {what} = {diff:.3g}")
        worst = max(worst, diff)
    if worst > tolerance:
        raise SystemExit(f"{label}: {what} differ by {worst:.3g} (> {tolerance})")
    return worst


def export_onnx(module, args: tuple, path: Path, input_names, output_names, dynamic_axes):
    """torch.onnx.export with the settings every stage uses (opset 17, TorchScript exporter,
    constant folding), then an onnx checker pass."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    # Without the external data: a graph over 2 GiB (XLM-R-large) keeps its weights in files
    # beside it, which protobuf could not hold in one message; the references stay as they are.
    model = onnx.load(str(path), load_external_data=False)
    # Outputs without dynamic axes get the concrete shape of a PyTorch run (the exporter sometimes
    # leaves generated symbolic names such as "Addimage_embeddings_dim_0").
    with torch.no_grad():
        results = module(*args)
    results = results if isinstance(results, (tuple, list)) else (results,)
    dynamic_axes = dynamic_axes or {}
    changed = False
    for out, value in zip(model.graph.output, results):
        axes = dynamic_axes.get(out.name, {})
        for i, dim in enumerate(out.type.tensor_type.shape.dim):
            if i not in axes and not dim.HasField("dim_value"):
                dim.dim_value = int(value.shape[i])
                changed = True
    if changed:
        onnx.save(model, str(path))
    consolidate_external_data(path)
    onnx.checker.check_model(str(path))  # by path: works for graphs with external data too
    return path


def consolidate_external_data(path: Path):
    """A graph the exporter saved with external data (one file per tensor, ~150 for XLM-R-large)
    gets all its weights in one file, `<graph>.onnx.data`, which the manifest names and hashes
    (`external_data`, `external_data_sha256`): so the weights are verified on load and part of the
    cache key. Graphs under 2 GiB are left as they are."""
    path = Path(path)
    graph = onnx.load(str(path), load_external_data=False)
    locations = set()
    for tensor in graph.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations.update(e.value for e in tensor.external_data if e.key == "location")
    target = external_data_file(path)
    if not locations or locations == {target.name}:
        return
    full = onnx.load(str(path))  # every weight in memory
    for name in locations:
        (path.parent / name).unlink()
    onnx.save_model(full, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=target.name)


def export_query_image_model(wrapper, tokenizer, image_size, path: Path, output_names, label: str, queries):
    """Exports a VE or VG model that scores text queries against images, several images per run
    (inputs `pixel_values` [num_images, 3, H, W], `input_ids` and `attention_mask`
    [num_queries, sequence], `image_index` [num_queries]: the row of `pixel_values` each query
    belongs to; every output has a `num_queries` axis). riveg-bench packs the queries of several
    tweets into one run this way (one image per tweet); a run with one image and `image_index`
    all 0 is one tweet's. Checks ONNX Runtime against PyTorch on two images with `queries` spread
    over both, on one image with its first query alone, and that each query's outputs in the
    two-image run equal those of a run holding only its image (the image encoder sees each image on
    its own). Returns the ONNX path."""
    h, w = image_size
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.standard_normal((2, 3, h, w)).astype(np.float32))
    text = tokenizer(queries, padding=True, return_tensors="pt")
    # Traced with two images and queries of both, so nothing specialises to one image.
    spread = torch.tensor([i % 2 for i in range(len(queries))], dtype=torch.long)
    names = ["pixel_values", "input_ids", "attention_mask", "image_index"]
    axes = {
        "pixel_values": {0: "num_images"},
        "input_ids": {0: "num_queries", 1: "sequence"},
        "attention_mask": {0: "num_queries", 1: "sequence"},
        "image_index": {0: "num_queries"},
    }
    axes.update({o: {0: "num_queries"} for o in output_names})
    args = (pixels, text["input_ids"], text["attention_mask"], spread)
    path = export_onnx(wrapper, args, path, names, output_names, axes)
    session = ort_session(path)

    def run(images, batch, index):
        enc = tokenizer(batch, padding=True, return_tensors="pt")
        index = torch.tensor(index, dtype=torch.long)
        with torch.no_grad():
            want = wrapper(images, enc["input_ids"], enc["attention_mask"], index)
        got = session.run(
            None,
            {
                "pixel_values": images.numpy(),
                "input_ids": enc["input_ids"].numpy(),
                "attention_mask": enc["attention_mask"].numpy(),
                "image_index": index.numpy(),
            },
        )
        compare_outputs(
            f"{label} ({images.shape[0]} images, {len(batch)} queries)",
            {o: t.numpy() for o, t in zip(output_names, want)},
            dict(zip(output_names, got)),
        )
        return got

    both = run(pixels, queries, spread.tolist())
    run(pixels[:1], queries[:1], [0])
    # A query's outputs do not depend on the other images of its run.
    for image in range(2):
        rows = [i for i in range(len(queries)) if spread[i] == image]
        alone = run(pixels[image : image + 1], queries, [0] * len(queries))
        compare_outputs(
            f"{label} (image {image}'s queries)",
            {o: a[rows] for o, a in zip(output_names, alone)},
            {o: b[rows] for o, b in zip(output_names, both)},
            tolerance=1e-5,
            what="ONNX two-image run vs the image alone",
        )
    return path
