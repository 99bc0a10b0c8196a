#!/usr/bin/env python3
"""Converts train_gpt checkpoints to nanoGPT's ckpt.pt and back.

    tools/nanogpt_convert.py to-nanogpt   CKPT.safetensors OUT/ckpt.pt [--dataset NAME] [--mask-buffers]
    tools/nanogpt_convert.py from-nanogpt OUT/ckpt.pt CKPT.safetensors [--meta meta.pkl]
                                          [--set KEY=VALUE ...] [--trust-pickle]

to-nanogpt writes what nanoGPT's train.py saves: 'model' (its state_dict,
lm_head.weight sharing transformer.wte.weight's tensor as the tied head
does), 'optimizer' (torch.optim.AdamW's state_dict, from the checkpoint's
moments), 'model_args', 'iter_num', 'best_val_loss' (1e9, nanoGPT's "none
yet": train_gpt keeps no best) and 'config' (nanoGPT's names for the run
settings, plus 'gelu': 'tanh' and every train_gpt metadata string under
'tapegrad'). For a text checkpoint it also writes meta.pkl (stoi, itos,
vocab_size) beside ckpt.pt; nanoGPT's sample.py reads it from
data/<dataset>/meta.pkl. On PyTorch older than 2.0 nanoGPT also registers
its causal mask as buffers "transformer.h.<l>.attn.bias"; --mask-buffers
adds them so its strict load_state_dict accepts the file. Only the Pre-LN
block with residual scale 1, LayerNorm, the GELU MLP and learned positions
is nanoGPT's model; other variants are refused. The checkpoint's dropout
becomes model_args['dropout'], and back.

tapegrad's GELU is the tanh approximation, nanoGPT's nn.GELU() is exact
(erf): the converted model computes slightly different activations there.
Both directions warn; for identical outputs use GELU(approximate='tanh').

from-nanogpt writes a checkpoint train_gpt can --resume. The parameters are
copied exactly (biases are zero when model_args['bias'] is False, which
train_gpt holds at zero under --no-bias). AdamW's moments come from the
'optimizer' entry when it is nanoGPT's two groups (decayed >= 2-D weights,
then the rest) with one step count and no AMSGrad; otherwise, or without
one, the moments are zero and the step count 0, which is a fresh AdamW.
What the file needs and nanoGPT does not record is taken, in this order,
from --set, from config['tapegrad'] (a checkpoint that came from tapegrad
round-trips exactly), from the optimizer's groups (weight_decay, beta2),
from nanoGPT's config (batch_size, max_iters, learning_rate, min_lr,
warmup_iters, weight_decay, beta2, grad_clip), and otherwise train_gpt's --data defaults; seed defaults to 1337 (nanoGPT's),
and the batch sampler's state ('rng') to the one train_gpt starts from with
that seed. The vocabulary comes from --meta, or meta.pkl beside ckpt.pt, or
config['tapegrad']; its characters must be single bytes in ascending order,
as train_gpt builds its vocabulary from a text file.

Exit status: 0 done, 2 bad input (message naming the file and what is
wrong), 1 a failure while writing. Needs PyTorch (/usr/bin/python3 with
python3-torch); safetensors files are read and written here without the
safetensors package.
"""

import argparse
import importlib.util
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

FORMAT = "tapegrad-train_gpt-1"
# Settings --set may give, and their type.
SETTABLE = {"batch": int, "steps": int, "lr": float, "min_lr": float, "warmup": int, "weight_decay": float,
            "beta2": float, "clip": float, "seed": int}
# train_gpt's defaults for --data (nanoGPT's shakespeare-char CPU settings).
TEXT_DEFAULTS = {"batch": 12, "steps": 2000, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "weight_decay": 0.1,
                 "beta2": 0.99, "clip": 1.0, "seed": 1337}
# nanoGPT's config key for each train_gpt setting.
NANOGPT_NAMES = {"batch": "batch_size", "steps": "max_iters", "lr": "learning_rate", "min_lr": "min_lr",
                 "warmup": "warmup_iters", "weight_decay": "weight_decay", "beta2": "beta2", "clip": "grad_clip"}
BLOCK_SLOTS = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
               "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
               "mlp.c_proj.weight", "mlp.c_proj.bias"]
MAX_HEADER = 100 << 20


class BadInput(Exception):
    """Input that cannot be converted: exit 2 with the message."""


def warn(msg):
    print("warning: " + msg, file=sys.stderr)


# ---- safetensors ------------------------------------------------------------

def read_safetensors(path):
    """(OrderedDict name -> (dtype, shape, bytes), metadata dict) of path, every
    offset and size checked against the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadInput("%s: %s" % (path, e.strerror))
    if len(raw) < 8:
        raise BadInput("%s: truncated (%d bytes, no header length)" % (path, len(raw)))
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise BadInput("%s: header length %d does not fit the file's %d bytes" % (path, n, len(raw)))
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadInput("%s: the header is not JSON (%s)" % (path, e))
    if not isinstance(header, dict):
        raise BadInput("%s: the header is not a JSON object" % path)
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise BadInput("%s: __metadata__ is not an object of strings" % path)
    data = memoryview(raw)[8 + n:]
    tensors = OrderedDict()
    for name, t in header.items():
        ok = isinstance(t, dict) and t.get("dtype") in ("F32", "I32") and isinstance(t.get("shape"), list) \
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2 \
            and all(isinstance(x, int) and x >= 0 for x in t["shape"] + t["data_offsets"])
        if not ok:
            raise BadInput("%s: tensor '%s' is not an F32/I32 entry with shape and data_offsets" % (path, name))
        begin, end = t["data_offsets"]
        if not begin <= end <= len(data) or end - begin != 4 * math.prod(t["shape"]):
            raise BadInput("%s: tensor '%s' has data_offsets %s that do not fit its shape %s or the file"
                           % (path, name, t["data_offsets"], t["shape"]))
        tensors[name] = (t["dtype"], tuple(t["shape"]), bytes(data[begin:end]))
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """tensors: list of (name, torch float32 tensor). Written to a temporary
    file beside path, flushed and renamed over it."""
    header, blobs, offset = OrderedDict([("__metadata__", meta)]), [], 0
    for name, t in tensors:
        b = t.detach().to("cpu").contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- the model's parameters --------------------------------------------------

def param_shapes(layers, dim, vocab, ctx, bias):
    """OrderedDict name -> shape in nanoGPT's named_parameters() order (the
    tied head appears once, as transformer.wte.weight)."""
    shapes = {"ln_1.weight": (dim,), "ln_1.bias": (dim,), "attn.c_attn.weight": (3 * dim, dim),
              "attn.c_attn.bias": (3 * dim,), "attn.c_proj.weight": (dim, dim), "attn.c_proj.bias": (dim,),
              "ln_2.weight": (dim,), "ln_2.bias": (dim,), "mlp.c_fc.weight": (4 * dim, dim),
              "mlp.c_fc.bias": (4 * dim,), "mlp.c_proj.weight": (dim, 4 * dim), "mlp.c_proj.bias": (dim,)}
    out = OrderedDict([("transformer.wte.weight", (vocab, dim)), ("transformer.wpe.weight", (ctx, dim))])
    for layer in range(layers):
        for slot in BLOCK_SLOTS:
            out["transformer.h.%d.%s" % (layer, slot)] = shapes[slot]
    out["transformer.ln_f.weight"] = (dim,)
    out["transformer.ln_f.bias"] = (dim,)
    if not bias:
        out = OrderedDict((k, v) for k, v in out.items() if not k.endswith(".bias"))
    return out


def optimizer_order(shapes):
    """nanoGPT's configure_optimizers: parameters of two or more dimensions
    (decayed) first, then the rest, each in named_parameters() order; the
    optimizer's state is keyed by position in that list."""
    decay = [n for n, s in shapes.items() if len(s) >= 2]
    return decay, [n for n, s in shapes.items() if len(s) < 2]


def rng_state(seed):
    """train_gpt's initial batch sampler state for seed, as 32 hex digits:
    tg_rng_seed(seed ^ 0x9e3779b97f4a7c15), two splitmix64 outputs."""
    mask, x, words = (1 << 64) - 1, (seed ^ 0x9E3779B97F4A7C15) & ((1 << 64) - 1), []
    for _ in range(2):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        words += [z & 0xFFFFFFFF, z >> 32]
    return "".join("%08x" % w for w in words)


def fmt_float(x):
    """A float32 value as train_gpt writes it (%.9g, which round-trips)."""
    return "%.9g" % struct.unpack("<f", struct.pack("<f", x))[0]


# ---- tapegrad -> nanoGPT ---------------------------------------------------------

def meta_int(meta, key, path, lo=0):
    v = meta.get(key)
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise BadInput("%s: metadata '%s' is %r, not an integer" % (path, key, v))
    if n < lo or str(n) != v:
        raise BadInput("%s: metadata '%s' is %r, not an integer >= %d" % (path, key, v, lo))
    return n


def meta_float(meta, key, path):
    v = meta.get(key)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise BadInput("%s: metadata '%s' is %r, not a number" % (path, key, v))
    if not math.isfinite(x):
        raise BadInput("%s: metadata '%s' is %r, not finite" % (path, key, v))
    return x


def tensor_from(torch, entry, name, path, shape):
    dtype, got, data = entry
    if dtype != "F32" or got != tuple(shape):
        raise BadInput("%s: tensor '%s' is %s %s, expected F32 %s" % (path, name, dtype, list(got), list(shape)))
    t = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).clone()
    if not torch.isfinite(t).all():
        raise BadInput("%s: tensor '%s' holds a value that is not finite" % (path, name))
    return t


def vocab_chars(meta, path, vocab):
    chars = meta.get("chars", "")
    try:
        codes = [int(c) for c in chars.split(",")]
    except ValueError:
        raise BadInput("%s: metadata 'chars' is not a comma-separated list of byte values" % path)
    if len(codes) != vocab or codes != sorted(set(codes)) or not all(0 <= c < 256 for c in codes):
        raise BadInput("%s: metadata 'chars' is not %d ascending byte values" % (path, vocab))
    return codes


def to_nanogpt(args):
    import torch

    tensors, meta = read_safetensors(args.input)
    path = args.input
    if meta.get("format") != FORMAT:
        raise BadInput("%s: not a train_gpt checkpoint (no format %s in its metadata)" % (path, FORMAT))
    if meta.get("norm") != "pre":
        raise BadInput("%s: its blocks are %s (--norm %s); only the Pre-LN block (--norm pre) is nanoGPT's model"
                       % (path, meta.get("norm"), meta.get("norm")))
    for key, gpt2 in (("normtype", "layernorm"), ("mlp", "gelu"), ("pos", "learned")):
        if meta.get(key, gpt2) != gpt2:
            raise BadInput("%s: %s is %s; nanoGPT's model has %s only" % (path, key, meta[key], gpt2))
    dropout = meta_float(meta, "dropout", path) if "dropout" in meta else 0.0
    if meta_float(meta, "residual_scale", path) != 1.0:
        raise BadInput("%s: residual_scale is %s; nanoGPT's residual adds are unscaled (1)"
                       % (path, meta["residual_scale"]))
    vocab, ctx, layers, heads, dim = (meta_int(meta, k, path, 1) for k in ("vocab", "ctx", "layers", "heads", "dim"))
    if dim % heads:
        raise BadInput("%s: heads %d do not divide dim %d" % (path, heads, dim))
    bias = meta_int(meta, "bias", path) != 0
    settings = {k: (meta_int(meta, k, path) if t is int else meta_float(meta, k, path))
                for k, t in SETTABLE.items()}
    step, optim_steps = meta_int(meta, "step", path), meta_int(meta, "optim_steps", path)
    task = meta.get("task")
    if task not in ("text", "sort"):
        raise BadInput("%s: metadata 'task' is %r, not text or sort" % (path, task))

    all_shapes = param_shapes(layers, dim, vocab, ctx, True)
    shapes = param_shapes(layers, dim, vocab, ctx, bias)
    params, m, v = OrderedDict(), {}, {}
    for name, shape in all_shapes.items():
        for prefix, into in (("", params), ("optim.m.", m), ("optim.v.", v)):
            if prefix + name not in tensors:
                raise BadInput("%s: no tensor '%s'" % (path, prefix + name))
            t = tensor_from(torch, tensors[prefix + name], prefix + name, path, shape)
            if name in shapes:
                into[name] = t
            elif prefix == "" and t.any():
                raise BadInput("%s: the model has no biases (bias 0) but '%s' is not zero" % (path, name))

    known = {prefix + n for n in all_shapes for prefix in ("", "optim.m.", "optim.v.")}
    extra = sorted(set(tensors) - known)
    if extra:
        raise BadInput("%s: it holds tensors nanoGPT's GPT-2 block does not have (%s): RMSNorm, SwiGLU and "
                       "RoPE models do not convert" % (path, ", ".join(extra[:3])))

    sd = OrderedDict(params)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # the tied head: one tensor, two names
    if args.mask_buffers:
        mask = torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx)
        for layer in range(layers):
            sd["transformer.h.%d.attn.bias" % layer] = mask
    decay, nodecay = optimizer_order(shapes)
    index = {n: i for i, n in enumerate(decay + nodecay)}
    state = {index[n]: {"step": torch.tensor(float(optim_steps)), "exp_avg": m[n], "exp_avg_sq": v[n]}
             for n in decay + nodecay}
    group = {"lr": settings["lr"], "betas": (0.9, settings["beta2"]), "eps": 1e-8, "amsgrad": False,
             "foreach": None, "maximize": False, "capturable": False, "differentiable": False, "fused": None}
    optimizer = {"state": state, "param_groups": [
        dict(group, weight_decay=settings["weight_decay"], params=list(range(len(decay)))),
        dict(group, weight_decay=0.0, params=list(range(len(decay), len(decay) + len(nodecay))))]}
    model_args = {"n_layer": layers, "n_head": heads, "n_embd": dim, "block_size": ctx, "bias": bias,
                  "vocab_size": vocab, "dropout": dropout}
    config = {NANOGPT_NAMES[k]: settings[k] for k in NANOGPT_NAMES}
    config.update(model_args)
    config.update({"lr_decay_iters": settings["steps"], "decay_lr": True, "beta1": 0.9,
                   "gradient_accumulation_steps": 1, "dataset": args.dataset, "init_from": "resume",
                   "gelu": "tanh", "tapegrad": dict(meta)})
    ckpt = {"model": sd, "optimizer": optimizer, "model_args": model_args, "iter_num": step,
            "best_val_loss": 1e9, "config": config}

    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise BadInput("%s: no such directory" % out_dir)
    tmp = args.output + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, args.output)
    print("%s: %d layers, %d heads, dim %d, ctx %d, vocab %d, %s; step %d -> %s"
          % (path, layers, heads, dim, ctx, vocab, "biases" if bias else "no biases", step, args.output))
    if task == "text":
        codes = vocab_chars(meta, path, vocab)
        if any(c >= 128 for c in codes):
            warn("the vocabulary has bytes above 127; meta.pkl maps byte b to chr(b) (Latin-1), while "
                 "nanoGPT's prepare.py makes one symbol per Unicode character")
        itos = {i: chr(c) for i, c in enumerate(codes)}
        meta_pkl = os.path.join(out_dir, "meta.pkl")
        with open(meta_pkl + ".tmp", "wb") as f:
            pickle.dump({"vocab_size": vocab, "itos": itos, "stoi": {s: i for i, s in itos.items()}}, f)
        os.replace(meta_pkl + ".tmp", meta_pkl)
        print("vocabulary (%d characters) -> %s; nanoGPT's sample.py reads it from data/%s/meta.pkl"
              % (vocab, meta_pkl, args.dataset))
    warn("tapegrad's GELU is the tanh approximation, nanoGPT's nn.GELU() is erf: its outputs will differ "
         "slightly unless its MLP uses nn.GELU(approximate='tanh') (config['gelu'] records this)")


# ---- nanoGPT -> tapegrad --------------------------------------------------------

class NoGlobals(pickle.Unpickler):
    """meta.pkl holds dicts of str and int: nothing that needs a class."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("meta.pkl refers to %s.%s; only plain dicts are read" % (module, name))


def load_vocab(args, config, vocab):
    """Byte values of the vocabulary, or None for the sort task."""
    path = args.meta or os.path.join(os.path.dirname(os.path.abspath(args.input)), "meta.pkl")
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                mp = NoGlobals(f).load()
        except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
            raise BadInput("%s: not a nanoGPT meta.pkl (%s)" % (path, e))
        itos = mp.get("itos") if isinstance(mp, dict) else None
        if not isinstance(itos, dict) or sorted(itos) != list(range(vocab)):
            raise BadInput("%s: no 'itos' mapping each of the model's %d token ids" % (path, vocab))
        codes = []
        for i in range(vocab):
            s = itos[i]
            if not isinstance(s, str) or len(s) != 1 or ord(s) > 255:
                raise BadInput("%s: token %d is %r; train_gpt's vocabulary is single bytes" % (path, i, s))
            codes.append(ord(s))
        if codes != sorted(set(codes)):
            raise BadInput("%s: the characters are not in ascending order, as train_gpt's vocabulary is" % path)
        if any(c >= 128 for c in codes):
            warn("%s: characters above 127 become the byte of the same value (Latin-1); a text file for "
                 "train_gpt must hold them as those single bytes" % path)
        return codes
    if args.meta:
        raise BadInput("%s: no such file" % args.meta)
    tg = config.get("tapegrad", {})
    if tg.get("task") == "sort":
        return None
    if tg.get("task") == "text":
        return vocab_chars(tg, args.input + " config['tapegrad']", vocab)
    raise BadInput("%s: no vocabulary: give --meta meta.pkl (nanoGPT's data/<dataset>/meta.pkl); train_gpt "
                   "trains byte-level text, so a GPT-2 BPE model has no vocabulary it can use" % args.input)


def to_float32(torch, t, name, path):
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise BadInput("%s: '%s' is not a floating-point tensor" % (path, name))
    t = t.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(t).all():
        raise BadInput("%s: '%s' holds a value that is not finite" % (path, name))
    return t


def nanogpt_moments(torch, ckpt, shapes, path):
    """{name: (m, v)} and the step count from nanoGPT's AdamW state, or None
    (with a warning saying why) when it is absent or not mappable."""
    opt = ckpt.get("optimizer")
    if opt is None:
        return None
    decay, nodecay = optimizer_order(shapes)
    try:
        groups, state = opt["param_groups"], opt["state"]
        ok = isinstance(state, dict) and len(groups) == 2 and groups[0]["params"] == list(range(len(decay))) \
            and groups[1]["params"] == list(range(len(decay), len(decay) + len(nodecay)))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        warn("%s: the optimizer state is not nanoGPT's two AdamW groups of %d and %d parameters; "
             "starting AdamW afresh" % (path, len(decay), len(nodecay)))
        return None
    if any(g.get("amsgrad") for g in groups) or any(g.get("betas", (0.9,))[0] != 0.9 for g in groups) \
            or any(g.get("eps", 1e-8) != 1e-8 for g in groups) or groups[1].get("weight_decay", 0) != 0:
        warn("%s: AdamW ran with settings train_gpt does not have (AMSGrad, beta1 != 0.9, eps != 1e-8 or a "
             "decayed 1-D group); starting AdamW afresh" % path)
        return None
    moments, steps = {}, set()
    for i, name in enumerate(decay + nodecay):
        s = state.get(i)
        if s is None:
            moments[name] = (torch.zeros(shapes[name]), torch.zeros(shapes[name]))
            steps.add(0)
            continue
        m = to_float32(torch, s.get("exp_avg"), "optimizer state %d exp_avg (%s)" % (i, name), path)
        v = to_float32(torch, s.get("exp_avg_sq"), "optimizer state %d exp_avg_sq (%s)" % (i, name), path)
        if tuple(m.shape) != shapes[name] or tuple(v.shape) != shapes[name]:
            raise BadInput("%s: optimizer state %d has shape %s, but parameter %d of nanoGPT's order is %s %s"
                           % (path, i, list(m.shape), i, name, list(shapes[name])))
        if (v < 0).any():
            raise BadInput("%s: optimizer state %d (%s) has a negative exp_avg_sq" % (path, i, name))
        step = s.get("step")
        steps.add(int(step.item() if isinstance(step, torch.Tensor) else step))
        moments[name] = (m, v)
    if len(steps) != 1 or min(steps) < 0:
        warn("%s: the parameters' AdamW step counts differ (%s); starting AdamW afresh" % (path, sorted(steps)))
        return None
    return moments, steps.pop(), groups


STORAGE_DTYPES = {"FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
                  "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
                  "BoolStorage": "bool", "ByteStorage": "uint8"}


def read_torch_zip(torch, path):
    """A torch.save file (the zip format, nanoGPT's) read without running
    any of its pickle: only dicts, numbers, strings and tensors are built,
    and any other class it names is an error. (torch 1.13's torch.load
    ignores a restricted pickle_module, and its weights_only mode refuses
    the floats every nanoGPT config holds.)"""
    try:
        zf = zipfile.ZipFile(path)
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise BadInput("%s: not a torch.save zip archive (no single <name>/data.pkl)" % path)
        prefix, storages = pkl[0][:-len("data.pkl")], {}
    except zipfile.BadZipFile:
        raise BadInput("%s: not a torch.save zip archive (nanoGPT's format)" % path)

    def rebuild_tensor(storage, offset, size, stride, *rest):
        ok = all(isinstance(x, int) and x >= 0 for x in (offset, *size, *stride)) and len(size) == len(stride)
        last = offset + sum((n - 1) * st for n, st in zip(size, stride)) if all(size) else offset - 1
        if not ok or last >= storage.numel():
            raise BadInput("%s: a tensor of size %s does not fit its storage of %d" % (path, size, storage.numel()))
        return storage.as_strided(tuple(size), tuple(stride), offset)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild_tensor
            if (module, name) == ("torch._utils", "_rebuild_parameter"):
                return lambda data, *rest: data
            if module == "torch" and name in STORAGE_DTYPES:
                return getattr(torch, STORAGE_DTYPES[name])
            raise pickle.UnpicklingError("it refers to %s.%s, which a checkpoint of tensors does not need"
                                         % (module, name))

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                    and isinstance(pid[1], torch.dtype) and isinstance(pid[4], int)):
                raise pickle.UnpicklingError("an unknown persistent id %r" % (pid,))
            dtype, key, numel = pid[1], str(pid[2]), pid[4]
            if key not in storages:
                raw = zf.read(prefix + "data/" + key)
                if len(raw) != numel * torch.empty(0, dtype=dtype).element_size():
                    raise pickle.UnpicklingError("storage %s holds %d bytes, not %d elements" % (key, len(raw), numel))
                storages[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            return storages[key]

    try:
        return Unpickler(io.BytesIO(zf.read(pkl[0]))).load()
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise BadInput("%s: not a readable checkpoint: %s (--trust-pickle unpickles it in full, which runs "
                       "any code it holds)" % (path, e))


def load_nanogpt(torch, path, trust_pickle):
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu")
        return read_torch_zip(torch, path)
    except BadInput:
        raise
    except OSError as e:
        raise BadInput("%s: %s" % (path, e.strerror or e))
    except Exception as e:  # torch raises many kinds on a bad or hostile file
        hint = "" if trust_pickle else " (with --trust-pickle it is unpickled in full, which runs any code it holds)"
        raise BadInput("%s: not a readable PyTorch checkpoint: %s%s" % (path, str(e).splitlines()[0], hint))


def from_nanogpt(args):
    import torch

    path = args.input
    ckpt = load_nanogpt(torch, path, args.trust_pickle)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict) \
            or not isinstance(ckpt.get("model_args"), dict):
        raise BadInput("%s: not a nanoGPT checkpoint (no 'model' and 'model_args')" % path)
    ma = ckpt["model_args"]
    try:
        layers, heads, dim, ctx, vocab = (int(ma[k]) for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                 "vocab_size"))
        bias = bool(ma["bias"])
    except (KeyError, TypeError, ValueError) as e:
        raise BadInput("%s: model_args lacks or mangles %s" % (path, e))
    if min(layers, heads, dim, ctx, vocab) < 1 or dim % heads:
        raise BadInput("%s: model_args %s are not a model (sizes >= 1, n_head dividing n_embd)" % (path, ma))
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    if config.get("gelu") != "tanh":
        warn("nanoGPT's GELU is erf, tapegrad's the tanh approximation: the converted model's outputs "
             "will differ slightly from this checkpoint's")

    if not all(isinstance(k, str) for k in ckpt["model"]):
        raise BadInput("%s: the state dict has a key that is not a string" % path)
    # torch.compile'd models are saved with this prefix; nanoGPT strips it too.
    sd = {(k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k): t for k, t in ckpt["model"].items()}
    shapes = param_shapes(layers, dim, vocab, ctx, bias)
    params = {}
    for name, shape in shapes.items():
        if name not in sd:
            raise BadInput("%s: the state dict has no '%s'" % (path, name))
        params[name] = to_float32(torch, sd[name], name, path)
        if tuple(params[name].shape) != shape:
            raise BadInput("%s: '%s' has shape %s, model_args say %s"
                           % (path, name, list(params[name].shape), list(shape)))
    head = sd.get("lm_head.weight")
    if head is not None and not torch.equal(to_float32(torch, head, "lm_head.weight", path),
                                            params["transformer.wte.weight"]):
        raise BadInput("%s: lm_head.weight differs from transformer.wte.weight; tapegrad's head is tied" % path)
    # nanoGPT without flash attention registers its causal mask as attn.bias.
    extra = sorted(k for k in sd if k not in shapes and k != "lm_head.weight" and not k.endswith(".attn.bias"))
    if extra:
        raise BadInput("%s: the state dict holds tensors nanoGPT's GPT does not have: %s" % (path, extra[:5]))

    found = nanogpt_moments(torch, ckpt, shapes, path)
    tg = config.get("tapegrad", {}) if isinstance(config.get("tapegrad"), dict) else {}
    codes = load_vocab(args, config, vocab)

    settings = dict(TEXT_DEFAULTS)
    for key, nano in NANOGPT_NAMES.items():
        if isinstance(config.get(nano), (int, float)) and not isinstance(config.get(nano), bool):
            settings[key] = config[nano]
    if "learning_rate" in config and "min_lr" not in config:
        settings["min_lr"] = settings["lr"] / 10
    if found:
        settings["weight_decay"] = found[2][0].get("weight_decay", settings["weight_decay"])
        settings["beta2"] = found[2][0].get("betas", (0.9, settings["beta2"]))[1]
    for key, kind in SETTABLE.items():
        if key in tg:
            settings[key] = kind(tg[key])
    for item in args.set or []:
        key, _, value = item.partition("=")
        if key not in SETTABLE:
            raise BadInput("--set %s: the settings are %s" % (item, ", ".join(SETTABLE)))
        try:
            settings[key] = SETTABLE[key](value)
        except ValueError:
            raise BadInput("--set %s: %r is not %s" % (item, value, "an integer" if SETTABLE[key] is int else "a number"))
    for key, kind in SETTABLE.items():
        x = settings[key]
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise BadInput("setting %s = %r is not a number" % (key, x))
        if not math.isfinite(x) or x < 0 or (kind is int and x != int(x)):
            raise BadInput("setting %s = %r is not a non-negative %s" % (key, x, kind.__name__))
    if settings["beta2"] >= 1 or settings["batch"] < 1 or settings["steps"] < 1 or settings["lr"] <= 0:
        raise BadInput("settings %s: batch and steps must be >= 1, lr > 0, beta2 < 1" % settings)

    step = ckpt.get("iter_num", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise BadInput("%s: iter_num %r is not a step count" % (path, step))
    moments, optim_steps = (found[0], found[1]) if found else ({}, 0)
    meta = {"vocab": str(vocab), "ctx": str(ctx), "layers": str(layers), "heads": str(heads), "dim": str(dim),
            "norm": "pre", "residual_scale": "1"}
    # The LLaMA-style options: absent means GPT-2's, which nanoGPT's model is.
    for key in ("normtype", "mlp", "pos"):
        if key in tg:
            meta[key] = tg[key]
    dropout = ma.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise BadInput("%s: model_args dropout %r is not in [0, 1)" % (path, dropout))
    if "dropout" in tg or dropout:
        meta["dropout"] = tg.get("dropout", fmt_float(dropout))
    meta["format"] = FORMAT
    for key, kind in SETTABLE.items():
        meta[key] = str(int(settings[key])) if kind is int else fmt_float(settings[key])
    meta.update({"bias": "1" if bias else "0", "step": str(step), "optim_steps": str(optim_steps),
                 "rng": tg.get("rng") or rng_state(int(settings["seed"])),
                 "task": "sort" if codes is None else "text"})
    if codes is not None:
        meta["chars"] = ",".join(str(c) for c in codes)

    all_shapes = param_shapes(layers, dim, vocab, ctx, True)
    zero = {n: torch.zeros(s) for n, s in all_shapes.items()}
    out = [(n, params.get(n, zero[n])) for n in all_shapes]
    out += [("optim.m." + n, moments[n][0] if n in moments else zero[n]) for n in all_shapes]
    out += [("optim.v." + n, moments[n][1] if n in moments else zero[n]) for n in all_shapes]
    write_safetensors(args.output, out, meta)
    print("%s: %d layers, %d heads, dim %d, ctx %d, vocab %d, %s; step %d, AdamW %s -> %s"
          % (path, layers, heads, dim, ctx, vocab, "biases" if bias else "no biases (held at 0)", step,
             "state from the checkpoint (%d steps)" % optim_steps if found else "afresh", args.output))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    sub = ap.add_subparsers(dest="direction", required=True)
    a = sub.add_parser("to-nanogpt", help="a train_gpt checkpoint to nanoGPT's ckpt.pt (and meta.pkl)")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--dataset", default="tapegrad", help="config['dataset'], where sample.py looks for meta.pkl")
    a.add_argument("--mask-buffers", action="store_true",
                   help="add the causal-mask buffers (attn.bias) nanoGPT registers on PyTorch < 2.0")
    b = sub.add_parser("from-nanogpt", help="nanoGPT's ckpt.pt to a train_gpt checkpoint")
    b.add_argument("input")
    b.add_argument("output")
    b.add_argument("--meta", help="nanoGPT's meta.pkl (default: beside the input)")
    b.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a run setting to record: " + ", ".join(SETTABLE))
    b.add_argument("--trust-pickle", action="store_true",
                   help="unpickle the checkpoint in full (runs any code in it); only for files you trust")
    args = ap.parse_args()
    if importlib.util.find_spec("torch") is None:
        print("nanogpt_convert: needs PyTorch (run it with /usr/bin/python3 after apt-get install python3-torch)",
              file=sys.stderr)
        return 2
    try:
        (to_nanogpt if args.direction == "to-nanogpt" else from_nanogpt)(args)
    except BadInput as e:
        print("nanogpt_convert: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("nanogpt_convert: %s: %s" % (e.filename or args.output, e.strerror), file=sys.stderr)
        return 1
    except RuntimeError as e:  # torch.save's errors
        print("nanogpt_convert: %s: %s" % (args.output, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
