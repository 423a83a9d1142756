#!/usr/bin/env python3
"""Generate the tiny test models under models/tiny/ and their manifests models/tiny-*.toml.

Every model is a hand-built ONNX graph (opset 17, ir_version 8) whose output depends on its inputs
in a way a test can reason about:

* tagger   : logits = emission table gathered by token id (capitalised vocabulary words score
             B-/I- labels, lowercase words score O, `##` pieces score B-ORG so that a broken
             first-subword alignment shows up as extra entities), times the attention mask.
* entailer : logit = 4 * mean(pixel_values) + masked mean of a per-token query weight - 0.5;
             outputs [0, logit] so softmax(.)[1] = sigmoid(logit). Brighter images and
             capitalised query words give higher probabilities.
* grounder : box = the tight box around input pixels brighter than mid-grey (cxcywh, normalised
             to the model input); score = sigmoid(query weight mean).
* ofa      : OFA-style location-token grounder: the encoder computes the grounder's bright box
             (normalised x1 y1 x2 y2) as its "hidden state"; the decoder, fed t tokens, peaks its
             last-position logits at <bin_k> for coordinate t-1 (k = round(coord * 16), 17 bins
             after the 47 text tokens), so greedy decoding yields the box.
* sam      : encoder = channel mean average-pooled 4x4 (32x32 input -> 8x8 feature map);
             decoder = that feature map upsampled x4, kept inside the prompt box (SAM-style
             point_coords with labels 2/3), -1 outside; mask = logits > 0.

Weights come from numpy's PCG64 generator with a fixed seed, the PNG writer and zlib level are
fixed, and nothing depends on time or paths, so re-running gives identical bytes (check with
`sha256sum models/tiny/*` before and after). Expected outputs for the Rust tests are computed
here with onnxruntime (CPU) and written to models/tiny/expected.json.

Usage: .venv/bin/python scripts/gen_tiny_models.py   (from the repository root)
"""

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from seqeval.metrics.sequence_labeling import get_entities
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders

SEED = 20261124
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "tiny"
MANIFESTS = ROOT / "models"

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-OTHER", "I-OTHER"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
# word -> label its emission favours (the "capitalised-looking" ids are B-/I- tagged).
WORDS = {
    "Angelina": "B-PER", "Donald": "B-PER", "Taylor": "B-PER", "Lionel": "B-PER",
    "Jolie": "I-PER", "Trump": "I-PER", "Swift": "I-PER", "Messi": "I-PER",
    "Paris": "B-LOC", "London": "B-LOC", "Texas": "B-LOC", "New": "B-LOC", "York": "I-LOC",
    "Apple": "B-ORG", "NASA": "B-ORG", "Arsenal": "B-ORG", "Inc": "I-ORG", "FC": "I-ORG",
    "Oscars": "B-OTHER", "iPhone": "B-OTHER",
    "the": "O", "a": "O", "at": "O", "in": "O", "is": "O", "with": "O", "and": "O",
    "visit": "O", "love": "O", "new": "O", "game": "O", "today": "O", "photo": "O",
    "RT": "O", "!": "O", ".": "O", "#": "O", "@": "O", ":": "O", "'": "O",
    "##s": "B-ORG", "##ing": "B-ORG", "##ed": "B-ORG",
}
VOCAB = {tok: i for i, tok in enumerate(SPECIALS + list(WORDS))}
VOCAB_SIZE = len(VOCAB)
MAX_LENGTH = 16  # tokens, special tokens included

VE_SIZE = 16  # entailer / grounder input is 16x16
SAM_SIZE = 32  # segmenter encoder input is 32x32


def rng():
    return np.random.Generator(np.random.PCG64(SEED))


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(graph, name):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="riveg-bench gen_tiny_models.py",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = OUT / name
    path.write_bytes(model.SerializeToString())
    return path


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


# ---------------------------------------------------------------- tokenizer
def build_tokenizer():
    tok = Tokenizer(models.WordPiece(vocab=VOCAB, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIALS)
    path = OUT / "tokenizer.json"
    # Canonical JSON (sorted keys, fixed separators) so the bytes never depend on dict order.
    path.write_text(json.dumps(json.loads(tok.to_str()), sort_keys=True, indent=1) + "\n")
    return Tokenizer.from_file(str(path)), path


# ---------------------------------------------------------------- tagger
def build_tagger():
    g = rng()
    emissions = g.normal(0.0, 0.1, size=(VOCAB_SIZE, len(LABELS))).astype(np.float32)
    for tok, i in VOCAB.items():
        label = WORDS.get(tok, "O")
        emissions[i, LABELS.index(label)] += 3.0
    nodes = [
        helper.make_node("Gather", ["emissions", "input_ids"], ["gathered"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis_last"], ["mask_3d"]),
        helper.make_node("Mul", ["gathered", "mask_3d"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_tagger",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", len(LABELS)])],
        [const("emissions", emissions), const("axis_last", np.array([2], dtype=np.int64))],
    )
    # CRF: forbid transitions that break BIO (O -> I-X, B-X/I-X -> I-Y with X != Y, start -> I-X),
    # plus small seeded scores so the matrix is not trivially symmetric.
    n = len(LABELS)
    transitions = np.round(g.normal(0.0, 0.05, size=(n, n)), 4)
    start = np.zeros(n)
    end = np.zeros(n)
    for j, to in enumerate(LABELS):
        if to.startswith("I-"):
            start[j] = -10000.0
            for i, frm in enumerate(LABELS):
                if frm == "O" or frm[2:] != to[2:]:
                    transitions[i, j] = -10000.0
    crf = {"transitions": transitions.tolist(), "start": start.tolist(), "end": end.tolist()}
    (OUT / "tagger_crf.json").write_text(json.dumps(crf, indent=1) + "\n")
    return save_model(graph, "tagger.onnx"), crf


def viterbi(emissions, crf):
    trans = np.asarray(crf["transitions"])
    score = np.asarray(crf["start"]) + emissions[0]
    back = []
    for t in range(1, len(emissions)):
        total = score[:, None] + trans + emissions[t][None, :]
        back.append(total.argmax(axis=0))
        score = total.max(axis=0)
    score = score + np.asarray(crf["end"])
    best = [int(score.argmax())]
    for b in reversed(back):
        best.append(int(b[best[-1]]))
    return best[::-1]


# ---------------------------------------------------------------- query weights (VE + VG)
def query_weights():
    g = rng()
    weights = g.normal(0.0, 0.05, size=VOCAB_SIZE).astype(np.float32)
    for tok, i in VOCAB.items():
        if tok[:1].isupper():
            weights[i] += 1.5
        elif tok not in SPECIALS:
            weights[i] -= 0.5
    return weights


def query_score_nodes(prefix):
    """Masked mean of the per-token weight: [n, s] ids + mask -> [n]."""
    return [
        helper.make_node("Gather", ["query_weights", "input_ids"], [f"{prefix}_w"], axis=0),
        helper.make_node("Cast", ["attention_mask"], [f"{prefix}_m"], to=TensorProto.FLOAT),
        helper.make_node("Mul", [f"{prefix}_w", f"{prefix}_m"], [f"{prefix}_wm"]),
        helper.make_node("ReduceSum", [f"{prefix}_wm", "axis_1"], [f"{prefix}_sum"], keepdims=0),
        helper.make_node("ReduceSum", [f"{prefix}_m", "axis_1"], [f"{prefix}_cnt0"], keepdims=0),
        helper.make_node("Max", [f"{prefix}_cnt0", "one"], [f"{prefix}_cnt"]),
        helper.make_node("Div", [f"{prefix}_sum", f"{prefix}_cnt"], [f"{prefix}_score"]),
    ]


def vision_text_inputs(size):
    return [
        helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["num_queries", 3, size, size]),
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["num_queries", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["num_queries", "sequence"]),
    ]


def build_entailer():
    nodes = query_score_nodes("q") + [
        helper.make_node("ReduceMean", ["pixel_values"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["brightness", "four"], ["b4"]),
        helper.make_node("Add", ["b4", "q_score"], ["z0"]),
        helper.make_node("Sub", ["z0", "half"], ["z"]),
        helper.make_node("Unsqueeze", ["z", "axis_1"], ["z_col"]),
        helper.make_node("Mul", ["z_col", "zero"], ["zeros_col"]),
        helper.make_node("Concat", ["zeros_col", "z_col"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_entailer",
        vision_text_inputs(VE_SIZE),
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["num_queries", 2])],
        [
            const("query_weights", query_weights()),
            const("axis_1", np.array([1], dtype=np.int64)),
            const("one", np.array(1.0, dtype=np.float32)),
            const("four", np.array(4.0, dtype=np.float32)),
            const("half", np.array(0.5, dtype=np.float32)),
            const("zero", np.array(0.0, dtype=np.float32)),
        ],
    )
    return save_model(graph, "entailer.onnx")


def build_grounder():
    s = VE_SIZE
    idx = np.arange(s, dtype=np.float32)
    nodes = query_score_nodes("q") + [
        helper.make_node("Sigmoid", ["q_score"], ["scores"]),
        # brightness map [n, s, s]; a column/row is "bright" when any pixel in it is above grey
        helper.make_node("ReduceMean", ["pixel_values"], ["bmap"], axes=[1], keepdims=0),
        helper.make_node("ReduceMax", ["bmap"], ["col_max"], axes=[1], keepdims=0),  # [n, W]
        helper.make_node("ReduceMax", ["bmap"], ["row_max"], axes=[2], keepdims=0),  # [n, H]
        helper.make_node("Greater", ["col_max", "zero"], ["col_on"]),
        helper.make_node("Greater", ["row_max", "zero"], ["row_on"]),
        helper.make_node("Where", ["col_on", "idx", "size"], ["x_lo"]),
        helper.make_node("Where", ["col_on", "idx_end", "zero"], ["x_hi"]),
        helper.make_node("Where", ["row_on", "idx", "size"], ["y_lo"]),
        helper.make_node("Where", ["row_on", "idx_end", "zero"], ["y_hi"]),
        helper.make_node("ReduceMin", ["x_lo"], ["x1"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["x_hi"], ["x2"], axes=[1], keepdims=1),
        helper.make_node("ReduceMin", ["y_lo"], ["y1"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["y_hi"], ["y2"], axes=[1], keepdims=1),
        helper.make_node("Add", ["x1", "x2"], ["xs"]),
        helper.make_node("Add", ["y1", "y2"], ["ys"]),
        helper.make_node("Sub", ["x2", "x1"], ["w"]),
        helper.make_node("Sub", ["y2", "y1"], ["h"]),
        helper.make_node("Concat", ["xs", "ys", "w", "h"], ["box_px2"], axis=1),
        # (x1+x2)/2/s, (y1+y2)/2/s, w/s, h/s
        helper.make_node("Mul", ["box_px2", "box_scale"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_grounder",
        vision_text_inputs(s),
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["num_queries", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["num_queries"]),
        ],
        [
            const("query_weights", query_weights()),
            const("axis_1", np.array([1], dtype=np.int64)),
            const("one", np.array(1.0, dtype=np.float32)),
            const("zero", np.array(0.0, dtype=np.float32)),
            const("size", np.array(float(s), dtype=np.float32)),
            const("idx", idx),
            const("idx_end", idx + 1.0),
            const("box_scale", np.array([0.5 / s, 0.5 / s, 1.0 / s, 1.0 / s], dtype=np.float32)),
        ],
    )
    return save_model(graph, "grounder.onnx")


OFA_BINS = 17  # bins 0..16 -> 0..16 px of the 16x16 input


def build_ofa():
    s = VE_SIZE
    idx = np.arange(s, dtype=np.float32)
    box_nodes = [
        helper.make_node("ReduceMean", ["pixel_values"], ["bmap"], axes=[1], keepdims=0),
        helper.make_node("ReduceMax", ["bmap"], ["col_max"], axes=[1], keepdims=0),
        helper.make_node("ReduceMax", ["bmap"], ["row_max"], axes=[2], keepdims=0),
        helper.make_node("Greater", ["col_max", "zero"], ["col_on"]),
        helper.make_node("Greater", ["row_max", "zero"], ["row_on"]),
        helper.make_node("Where", ["col_on", "idx", "size"], ["x_lo"]),
        helper.make_node("Where", ["col_on", "idx_end", "zero"], ["x_hi"]),
        helper.make_node("Where", ["row_on", "idx", "size"], ["y_lo"]),
        helper.make_node("Where", ["row_on", "idx_end", "zero"], ["y_hi"]),
        helper.make_node("ReduceMin", ["x_lo"], ["x1"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["x_hi"], ["x2"], axes=[1], keepdims=1),
        helper.make_node("ReduceMin", ["y_lo"], ["y1"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["y_hi"], ["y2"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["x1", "y1", "x2", "y2"], ["box_px"], axis=1),
        helper.make_node("Div", ["box_px", "size"], ["box_norm"]),
        # the query only shifts by 0 * (masked weight mean): every input is used
        helper.make_node("Mul", ["q_score", "zero"], ["q_zero"]),
        helper.make_node("Unsqueeze", ["q_zero", "axis_1"], ["q_zero_col"]),
        helper.make_node("Add", ["box_norm", "q_zero_col"], ["box_q"]),
        helper.make_node("Unsqueeze", ["box_q", "axis_1"], ["encoder_hidden_states"]),
    ]
    enc = helper.make_graph(
        query_score_nodes("q") + box_nodes,
        "tiny_ofa_encoder",
        vision_text_inputs(s),
        [helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT, ["num_queries", 1, 4])],
        [
            const("query_weights", query_weights()),
            const("axis_1", np.array([1], dtype=np.int64)),
            const("one", np.array(1.0, dtype=np.float32)),
            const("zero", np.array(0.0, dtype=np.float32)),
            const("size", np.array(float(s), dtype=np.float32)),
            const("idx", idx),
            const("idx_end", idx + 1.0),
        ],
    )
    enc_path = save_model(enc, "ofa_encoder.onnx")
    vocab = VOCAB_SIZE + OFA_BINS
    dec = helper.make_graph(
        [
            helper.make_node("Shape", ["decoder_input_ids"], ["ids_shape"]),
            helper.make_node("Gather", ["ids_shape", "i1"], ["t"], axis=0),
            helper.make_node("Sub", ["t", "i1"], ["t_minus_1"]),
            helper.make_node("Min", ["t_minus_1", "i3"], ["step"]),
            helper.make_node("Reshape", ["encoder_hidden_states", "shape_n4"], ["hidden"]),
            helper.make_node("Gather", ["hidden", "step"], ["coord"], axis=1),  # [n]
            helper.make_node("Mul", ["coord", "bin_scale"], ["coord_bins"]),
            helper.make_node("Round", ["coord_bins"], ["bin"]),
            helper.make_node("Add", ["bin", "first_bin"], ["target"]),
            helper.make_node("Unsqueeze", ["target", "axis_1"], ["target_col"]),  # [n, 1]
            helper.make_node("Sub", ["vocab_idx", "target_col"], ["diff"]),  # [n, vocab]
            helper.make_node("Abs", ["diff"], ["dist"]),
            helper.make_node("Neg", ["dist"], ["neg"]),
            helper.make_node("Unsqueeze", ["neg", "axis_1"], ["logits"]),  # [n, 1, vocab]
        ],
        "tiny_ofa_decoder",
        [
            helper.make_tensor_value_info("decoder_input_ids", TensorProto.INT64, ["num_queries", "decoded"]),
            helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT, ["num_queries", 1, 4]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["num_queries", "last", vocab])],
        [
            const("i1", np.array(1, dtype=np.int64)),
            const("i3", np.array(3, dtype=np.int64)),
            const("shape_n4", np.array([-1, 4], dtype=np.int64)),
            const("axis_1", np.array([1], dtype=np.int64)),
            const("bin_scale", np.array(float(OFA_BINS - 1), dtype=np.float32)),
            const("first_bin", np.array(float(VOCAB_SIZE), dtype=np.float32)),
            const("vocab_idx", np.arange(vocab, dtype=np.float32).reshape(1, vocab)),
        ],
    )
    return enc_path, save_model(dec, "ofa_decoder.onnx")


def build_sam():
    s, f = SAM_SIZE, SAM_SIZE // 4
    enc = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pixel_values"], ["gray"], axes=[1], keepdims=1),
            helper.make_node("AveragePool", ["gray"], ["image_embeddings"], kernel_shape=[4, 4], strides=[4, 4]),
        ],
        "tiny_sam_encoder",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, s, s])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 1, f, f])],
        [],
    )
    enc_path = save_model(enc, "sam_encoder.onnx")
    centers = np.arange(s, dtype=np.float32) + 0.5
    dec = helper.make_graph(
        [
            # nearest x4 upsampling by reshape + expand: [1,1,f,1,f,1] -> [1,1,f,4,f,4] -> [1,1,s,s]
            helper.make_node("Reshape", ["image_embeddings", "shape6"], ["e6"]),
            helper.make_node("Expand", ["e6", "expand6"], ["e6x"]),
            helper.make_node("Reshape", ["e6x", "shape4"], ["up"]),
            # box corners from SAM-style points: [[x1, y1], [x2, y2]] with labels [2, 3]
            helper.make_node("Reshape", ["point_coords", "shape_flat"], ["pc"]),
            helper.make_node("Gather", ["pc", "i0"], ["x1"], axis=0),
            helper.make_node("Gather", ["pc", "i1"], ["y1"], axis=0),
            helper.make_node("Gather", ["pc", "i2"], ["x2"], axis=0),
            helper.make_node("Gather", ["pc", "i3"], ["y2"], axis=0),
            helper.make_node("GreaterOrEqual", ["xs", "x1"], ["gx1"]),
            helper.make_node("LessOrEqual", ["xs", "x2"], ["lx2"]),
            helper.make_node("GreaterOrEqual", ["ys", "y1"], ["gy1"]),
            helper.make_node("LessOrEqual", ["ys", "y2"], ["ly2"]),
            helper.make_node("And", ["gx1", "lx2"], ["inx"]),
            helper.make_node("And", ["gy1", "ly2"], ["iny"]),
            helper.make_node("And", ["inx", "iny"], ["inside"]),
            helper.make_node("Where", ["inside", "up", "minus_one"], ["masked"]),
            # labels only shift by 0 * sum(labels): the graph uses every input, as SAM's does
            helper.make_node("ReduceSum", ["point_labels"], ["lsum"], keepdims=0),
            helper.make_node("Mul", ["lsum", "zero"], ["lzero"]),
            helper.make_node("Add", ["masked", "lzero"], ["masks"]),
        ],
        "tiny_sam_decoder",
        [
            helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 1, f, f]),
            helper.make_tensor_value_info("point_coords", TensorProto.FLOAT, [1, 2, 2]),
            helper.make_tensor_value_info("point_labels", TensorProto.FLOAT, [1, 2]),
        ],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT, [1, 1, s, s])],
        [
            const("shape6", np.array([1, 1, f, 1, f, 1], dtype=np.int64)),
            const("expand6", np.array([1, 1, f, 4, f, 4], dtype=np.int64)),
            const("shape4", np.array([1, 1, s, s], dtype=np.int64)),
            const("shape_flat", np.array([4], dtype=np.int64)),
            const("i0", np.array(0, dtype=np.int64)),
            const("i1", np.array(1, dtype=np.int64)),
            const("i2", np.array(2, dtype=np.int64)),
            const("i3", np.array(3, dtype=np.int64)),
            const("xs", centers.reshape(1, s)),
            const("ys", centers.reshape(s, 1)),
            const("minus_one", np.array(-1.0, dtype=np.float32)),
            const("zero", np.array(0.0, dtype=np.float32)),
        ],
    )
    return enc_path, save_model(dec, "sam_decoder.onnx")


# ---------------------------------------------------------------- images
def write_png(path, rgb):
    """Minimal deterministic PNG writer (RGB, 8-bit, no filtering, zlib level 9)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def images():
    """name -> HxWx3 uint8 array. A dark background (20) with bright (230) rectangles."""
    out = {}
    for name, level in [("gray_dark", 40), ("gray_mid", 128), ("gray_bright", 220)]:
        out[name] = np.full((VE_SIZE, VE_SIZE, 3), level, dtype=np.uint8)
    img = np.full((VE_SIZE, VE_SIZE, 3), 20, dtype=np.uint8)
    img[4:10, 3:12] = 230  # rows 4..9, cols 3..11 -> box x 3..12, y 4..10
    out["bright_rect_16"] = img
    big = np.full((48, 64, 3), 20, dtype=np.uint8)
    big[12:30, 16:44] = 230  # 4x downscale in x, 3x in y: x 16..44 -> 4..11, y 12..30 -> 4..10
    out["bright_rect_64x48"] = big
    sam = np.full((SAM_SIZE, SAM_SIZE, 3), 20, dtype=np.uint8)
    sam[8:24, 4:20] = 230
    out["sam_32"] = sam
    sam_big = np.full((48, 64, 3), 20, dtype=np.uint8)
    sam_big[16:48, 8:40] = 230
    out["sam_64x48"] = sam_big
    for name, arr in out.items():
        write_png(OUT / f"{name}.png", arr)
    return out


def normalise(arr):
    """HxWx3 uint8 -> 1x3xHxW float32, (x / 255 - 0.5) / 0.5, as the manifests say."""
    x = arr.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def column_major_runs(mask):
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return runs


def encode_queries(tok, queries):
    encs = [tok.encode(q) for q in queries]
    n = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), n), dtype=np.int64)
    mask = np.zeros((len(encs), n), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask


# ---------------------------------------------------------------- manifests
def tensor_toml(kind, name, dtype, shape):
    dims = ", ".join(str(d) if isinstance(d, int) else f'"{d}"' for d in shape)
    return f'[[{kind}]]\nname = "{name}"\ndtype = "{dtype}"\nshape = [{dims}]\n'


def model_toml(role, path, inputs, outputs):
    text = f'[models.{role}]\npath = "tiny/{path.name}"\nsha256 = "{sha256(path)}"\n\n'
    for n, d, s in inputs:
        text += tensor_toml(f"models.{role}.inputs", n, d, s) + "\n"
    for n, d, s in outputs:
        text += tensor_toml(f"models.{role}.outputs", n, d, s) + "\n"
    return text


HEADER = "# Generated by scripts/gen_tiny_models.py; do not edit by hand (re-run the script).\n"
TOKENIZER_TOML = '[tokenizer]\npath = "tiny/tokenizer.json"\nmax_length = {}\nvocab_size = {}\n\n'
PREPROCESS_TOML = (
    '[preprocess]\nimage_size = [{s}, {s}]\nresize = "{mode}"\nfilter = "bilinear"\n'
    "rescale = 0.00392156862745098\nmean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n\n"
)
VT_INPUTS = [
    ("pixel_values", "float32", ["num_queries", 3, VE_SIZE, VE_SIZE]),
    ("input_ids", "int64", ["num_queries", "sequence"]),
    ("attention_mask", "int64", ["num_queries", "sequence"]),
]


def write_manifests(paths, tok_path):
    tagger_io = (
        [("input_ids", "int64", ["batch", "sequence"]), ("attention_mask", "int64", ["batch", "sequence"])],
        [("logits", "float32", ["batch", "sequence", len(LABELS)])],
    )
    labels = "[labels]\nscheme = \"bio\"\nnames = [" + ", ".join(f'"{l}"' for l in LABELS) + "]\n\n"
    base = model_toml("main", paths["tagger"], *tagger_io) + TOKENIZER_TOML.format(MAX_LENGTH, VOCAB_SIZE) + labels
    (MANIFESTS / "tiny-tagger.toml").write_text(HEADER + 'name = "tiny-tagger"\nstage = "tagger"\n\n' + base)
    crf = f'[crf]\npath = "tiny/tagger_crf.json"\nsha256 = "{sha256(OUT / "tagger_crf.json")}"\n'
    (MANIFESTS / "tiny-tagger-crf.toml").write_text(
        HEADER + 'name = "tiny-tagger-crf"\nstage = "tagger"\n\n' + base + crf
    )
    ve = (
        HEADER
        + 'name = "tiny-entailer"\nstage = "entailer"\n\n'
        + model_toml("main", paths["entailer"], VT_INPUTS, [("logits", "float32", ["num_queries", 2])])
        + TOKENIZER_TOML.format(MAX_LENGTH, VOCAB_SIZE)
        + PREPROCESS_TOML.format(s=VE_SIZE, mode="stretch")
        + "[entailment]\npositive_index = 1\n"
    )
    (MANIFESTS / "tiny-entailer.toml").write_text(ve)
    vg = (
        HEADER
        + 'name = "tiny-grounder"\nstage = "grounder"\n\n'
        + model_toml(
            "main",
            paths["grounder"],
            VT_INPUTS,
            [("boxes", "float32", ["num_queries", 4]), ("scores", "float32", ["num_queries"])],
        )
        + TOKENIZER_TOML.format(MAX_LENGTH, VOCAB_SIZE)
        + PREPROCESS_TOML.format(s=VE_SIZE, mode="stretch")
        + '[boxes]\nformat = "cxcywh"\nunits = "normalized"\n'
    )
    (MANIFESTS / "tiny-grounder.toml").write_text(vg)
    ofa = (
        HEADER
        + 'name = "tiny-ofa"\nstage = "grounder"\n\n'
        + model_toml("encoder", paths["ofa_encoder"], VT_INPUTS, [("encoder_hidden_states", "float32", ["num_queries", 1, 4])])
        + model_toml(
            "decoder",
            paths["ofa_decoder"],
            [
                ("decoder_input_ids", "int64", ["num_queries", "decoded"]),
                ("encoder_hidden_states", "float32", ["num_queries", 1, 4]),
            ],
            [("logits", "float32", ["num_queries", "last", VOCAB_SIZE + OFA_BINS])],
        )
        + TOKENIZER_TOML.format(MAX_LENGTH, VOCAB_SIZE)
        + PREPROCESS_TOML.format(s=VE_SIZE, mode="stretch")
        + f"[location_tokens]\nfirst_bin_id = {VOCAB_SIZE}\nnum_bins = {OFA_BINS}\ndecoder_start_id = {VOCAB['[CLS]']}\n"
    )
    (MANIFESTS / "tiny-ofa.toml").write_text(ofa)
    f = SAM_SIZE // 4
    sam = (
        HEADER
        + 'name = "tiny-sam"\nstage = "segmenter"\n\n'
        + model_toml(
            "encoder",
            paths["sam_encoder"],
            [("pixel_values", "float32", [1, 3, SAM_SIZE, SAM_SIZE])],
            [("image_embeddings", "float32", [1, 1, f, f])],
        )
        + model_toml(
            "decoder",
            paths["sam_decoder"],
            [
                ("image_embeddings", "float32", [1, 1, f, f]),
                ("point_coords", "float32", [1, 2, 2]),
                ("point_labels", "float32", [1, 2]),
            ],
            [("masks", "float32", [1, 1, SAM_SIZE, SAM_SIZE])],
        )
        + PREPROCESS_TOML.format(s=SAM_SIZE, mode="longest_side")
    )
    (MANIFESTS / "tiny-sam.toml").write_text(sam)


# ---------------------------------------------------------------- expected outputs
TAGGER_TWEETS = [
    ("t_person", "RT @ Angelina Jolie visit Paris today !".split()),
    ("t_dangling_i", "the Jolie is in New York".split()),
    ("t_subwords", "Apple visits Arsenal FC with Taylor Swift".split()),
    ("t_mixed", "Paris Jolie and NASA Inc : Oscars photo".split()),
    ("t_unknown", "zzz Lionel Messi qqq".split()),
    ("t_long", "the game in London is new and the photo at Texas with a new game today !".split()),
]
VE_CASES = [
    ("gray_dark", ["Angelina Jolie", "the game"]),
    ("gray_mid", ["Angelina Jolie", "the game", "Paris"]),
    ("gray_bright", ["Angelina Jolie", "the game"]),
]
SAM_BOXES = [[2.0, 4.0, 14.0, 30.0], [0.0, 0.0, 32.0, 32.0], [24.0, 0.0, 32.0, 8.0]]


def expected_outputs(tok, paths, crf, imgs):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    exp = {"tagger": [], "tagger_crf": [], "entailer": [], "grounder": [], "segmenter": []}
    tok_trunc = Tokenizer.from_file(str(OUT / "tokenizer.json"))
    tok_trunc.enable_truncation(MAX_LENGTH)
    for tweet_id, words in TAGGER_TWEETS:
        enc = tok_trunc.encode(words, is_pretokenized=True)
        ids = np.array([enc.ids], dtype=np.int64)
        (logits,) = sess["tagger"].run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        first, seen = [], set()
        for pos, w in enumerate(enc.word_ids):
            if w is not None and w not in seen:
                seen.add(w)
                first.append(pos)
        word_logits = logits[0, first]
        for key, labels in [
            ("tagger", [LABELS[int(i)] for i in word_logits.argmax(axis=1)]),
            ("tagger_crf", [LABELS[i] for i in viterbi(word_logits.astype(np.float64), crf)]),
        ]:
            labels = labels + ["O"] * (len(words) - len(labels))  # truncated words
            ents = [
                {"text": " ".join(words[s : e + 1]), "type": t, "start": s, "end": e + 1}
                for t, s, e in get_entities(labels)
            ]
            exp[key].append({"id": tweet_id, "tokens": words, "labels": labels, "entities": ents})
    for image, queries in VE_CASES:
        ids, mask = encode_queries(tok, queries)
        pix = np.repeat(normalise(imgs[image]), len(queries), axis=0)
        (logits,) = sess["entailer"].run(None, {"pixel_values": pix, "input_ids": ids, "attention_mask": mask})
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (e[:, 1] / e.sum(axis=1)).tolist()
        exp["entailer"].append({"image": f"{image}.png", "queries": queries, "probabilities": probs})
    queries = ["Angelina Jolie", "the photo"]
    ids, mask = encode_queries(tok, queries)
    pix = np.repeat(normalise(imgs["bright_rect_16"]), len(queries), axis=0)
    boxes, scores = sess["grounder"].run(None, {"pixel_values": pix, "input_ids": ids, "attention_mask": mask})
    exp["grounder"].append(
        {
            "image": "bright_rect_16.png",
            "queries": queries,
            "raw_boxes_cxcywh": boxes.tolist(),
            "scores": scores.tolist(),
            "boxes_xyxy_px": [[3.0, 4.0, 12.0, 10.0]] * len(queries),
        }
    )
    exp["grounder"].append(
        {"image": "bright_rect_64x48.png", "queries": ["Paris"], "boxes_xyxy_px": [[16.0, 12.0, 44.0, 30.0]]}
    )
    exp["ofa"] = []
    for image, want in [("bright_rect_16", [3.0, 4.0, 12.0, 10.0]), ("bright_rect_64x48", [16.0, 12.0, 44.0, 30.0])]:
        queries = ["Angelina Jolie", "the photo"]
        ids, mask = encode_queries(tok, queries)
        tokens = None
        if image == "bright_rect_16":  # greedy decoding in Python, as the Rust adapter does it
            pix = np.repeat(normalise(imgs[image]), len(queries), axis=0)
            (hidden,) = sess["ofa_encoder"].run(None, {"pixel_values": pix, "input_ids": ids, "attention_mask": mask})
            dec = np.full((len(queries), 1), VOCAB["[CLS]"], dtype=np.int64)
            for _ in range(4):
                (logits,) = sess["ofa_decoder"].run(None, {"decoder_input_ids": dec, "encoder_hidden_states": hidden})
                last = logits[:, -1, VOCAB_SIZE : VOCAB_SIZE + OFA_BINS]
                dec = np.concatenate([dec, (last.argmax(axis=1) + VOCAB_SIZE)[:, None]], axis=1)
            tokens = dec[:, 1:].tolist()
        exp["ofa"].append({"image": f"{image}.png", "queries": queries, "tokens": tokens, "boxes_xyxy_px": [want] * len(queries)})
    (emb,) = sess["sam_encoder"].run(None, {"pixel_values": normalise(imgs["sam_32"])})
    masks = []
    for box in SAM_BOXES:
        pc = np.array(box, dtype=np.float32).reshape(1, 2, 2)
        pl = np.array([[2.0, 3.0]], dtype=np.float32)
        (m,) = sess["sam_decoder"].run(None, {"image_embeddings": emb, "point_coords": pc, "point_labels": pl})
        binary = m[0, 0] > 0
        masks.append({"box": box, "size": [SAM_SIZE, SAM_SIZE], "runs": column_major_runs(binary), "area": int(binary.sum())})
    exp["segmenter"].append({"image": "sam_32.png", "masks": masks})
    (OUT / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok, tok_path = build_tokenizer()
    tagger_path, crf = build_tagger()
    paths = {"tagger": tagger_path, "entailer": build_entailer(), "grounder": build_grounder()}
    paths["ofa_encoder"], paths["ofa_decoder"] = build_ofa()
    paths["sam_encoder"], paths["sam_decoder"] = build_sam()
    imgs = images()
    write_manifests(paths, tok_path)
    expected_outputs(tok, paths, crf, imgs)
    for p in sorted(OUT.iterdir()):
        print(f"{sha256(p)}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
