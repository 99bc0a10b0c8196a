#!/usr/bin/env python3
"""tools/nanogpt_convert.py against train_gpt and a nanoGPT-equivalent model.

usage: test_nanogpt_convert.py TRAIN_GPT CONVERTER

1. A train_gpt checkpoint (2 layers, biases) and one trained with --no-bias go
   to ckpt.pt. A minimal nanoGPT model written here (its module and parameter
   names, bias=False dropping every bias, tanh GELU as tapegrad's) loads the
   state dict strictly, and its validation loss over every window equals
   train_gpt's --eval-full figure for the same parameters (from the --log CSV,
   printed to 6 decimals) within 2e-5: float32 sums in a different order
   differ by ~1e-6 at a loss of ~2.5. torch.optim.AdamW loads the optimizer
   state with nanoGPT's two groups, and each moment lands on its parameter.
2. ckpt.pt back to a train_gpt checkpoint: every tensor and every metadata
   string equal to the original, bit for bit, and train_gpt resumes it to the
   same parameters as the original; also with --mask-buffers.
3. A checkpoint made the way nanoGPT makes one (erf GELU, AdamW steps taken
   in PyTorch, the torch.compile prefix) converts with its parameters and
   moments exact and resumes in train_gpt.
4. Refusals: a Post-LN checkpoint, a truncated file, an untied head, and a
   pickle that would run code (which must not run).

Exit 77 (skipped) when PyTorch cannot be imported.
"""
import csv
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("SKIP: PyTorch is not importable by %s" % sys.executable)
    sys.exit(77)

TRAIN_GPT, CONVERTER = sys.argv[1], sys.argv[2]
LOSS_TOL = 2e-5
CTX = 16
MODEL_FLAGS = ["--dim", "16", "--heads", "2", "--ctx", str(CTX), "--batch", "8", "--lr", "1e-2", "--warmup", "5",
               "--threads", "1", "--sample", "0"]


def run(cmd, expect=0):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != expect:
        raise AssertionError("%s exited %d, expected %d:\n%s%s" % (" ".join(cmd), r.returncode, expect,
                                                                   r.stdout[-2000:], r.stderr[-2000:]))
    return r


def convert(*args, expect=0):
    return run([sys.executable, CONVERTER] + list(args), expect)


def read_st(path):
    """name -> raw bytes, and the metadata, of a safetensors file."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    data = raw[8 + n:]
    return {k: (tuple(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}, meta


def as_tensor(entry):
    shape, b = entry
    return torch.frombuffer(bytearray(b), dtype=torch.float32).reshape(shape)


# ---- a minimal nanoGPT: its module names, LayerNorm with optional bias ------

class LayerNorm(nn.Module):
    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.c_attn = nn.Linear(a["n_embd"], 3 * a["n_embd"], bias=a["bias"])
        self.c_proj = nn.Linear(a["n_embd"], a["n_embd"], bias=a["bias"])
        self.n_head = a["n_head"]

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.n_head)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, a, gelu):
        super().__init__()
        self.c_fc = nn.Linear(a["n_embd"], 4 * a["n_embd"], bias=a["bias"])
        self.gelu = nn.GELU(approximate=gelu)
        self.c_proj = nn.Linear(4 * a["n_embd"], a["n_embd"], bias=a["bias"])

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, a, gelu):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(a["n_embd"], a["bias"]), Attention(a)
        self.ln_2, self.mlp = LayerNorm(a["n_embd"], a["bias"]), MLP(a, gelu)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, a, gelu="tanh"):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(a["vocab_size"], a["n_embd"]), wpe=nn.Embedding(a["block_size"], a["n_embd"]),
            h=nn.ModuleList([Block(a, gelu) for _ in range(a["n_layer"])]), ln_f=LayerNorm(a["n_embd"], a["bias"])))
        self.lm_head = nn.Linear(a["n_embd"], a["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, ids):
        x = self.transformer.wte(ids) + self.transformer.wpe(torch.arange(ids.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def configure_optimizers(self, weight_decay, lr, betas):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


def tokens(text_bytes):
    vocab = sorted(set(text_bytes))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text_bytes]), vocab


def val_loss(model, data):
    """train_gpt --eval-full: the last tenth cut into whole ctx windows."""
    val = data[len(data) * 9 // 10:]
    n = (len(val) - 1) // CTX
    with torch.no_grad():
        logits = model(val[:n * CTX].view(n, CTX))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), val[1:n * CTX + 1]).item()


def last_val_loss(log):
    rows = [r for r in csv.DictReader(open(log)) if r["val_loss"]]
    return float(rows[-1]["val_loss"])


def check_to_nanogpt(tmp, text, st, log, bias):
    out = os.path.join(tmp, "nano_%d" % bias)
    os.mkdir(out)
    r = convert("to-nanogpt", st, os.path.join(out, "ckpt.pt"))
    assert "tanh" in r.stderr, "no GELU warning: %r" % r.stderr
    ckpt = torch.load(os.path.join(out, "ckpt.pt"))
    tensors, meta = read_st(st)
    a = ckpt["model_args"]
    assert a == {"n_layer": int(meta["layers"]), "n_head": 2, "n_embd": 16, "block_size": CTX, "bias": bias,
                 "vocab_size": int(meta["vocab"]), "dropout": 0.0}, a
    assert ckpt["iter_num"] == int(meta["step"]) and ckpt["config"]["gelu"] == "tanh"
    sd = ckpt["model"]
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr(), "head not tied"
    for name, t in sd.items():
        if name != "lm_head.weight":
            assert torch.equal(t, as_tensor(tensors[name])), name
    assert bias or not any(k.endswith(".bias") for k in sd), "bias=False model with bias tensors"

    model = GPT(a)
    model.load_state_dict(sd, strict=True)
    data, vocab = tokens(text)
    mine, theirs = val_loss(model, data), last_val_loss(log)
    assert abs(mine - theirs) <= LOSS_TOL, "val loss %.6f in PyTorch, %.6f in train_gpt" % (mine, theirs)
    erf = GPT(a, gelu="none")
    erf.load_state_dict(sd)
    print("bias=%s: val loss PyTorch %.6f, train_gpt %.6f (erf GELU: %.6f)" % (bias, mine, theirs,
                                                                             val_loss(erf, data)))

    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    opt.load_state_dict(ckpt["optimizer"])
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            s = opt.state[p]
            assert torch.equal(s["exp_avg"], as_tensor(tensors["optim.m." + names[id(p)]])), names[id(p)]
            assert torch.equal(s["exp_avg_sq"], as_tensor(tensors["optim.v." + names[id(p)]])), names[id(p)]
            assert s["step"].item() == int(meta["optim_steps"])

    mp = pickle.load(open(os.path.join(out, "meta.pkl"), "rb"))
    assert mp["vocab_size"] == len(vocab) and "".join(mp["itos"][i] for i in range(len(vocab))) == \
        bytes(vocab).decode(), mp
    assert all(mp["stoi"][mp["itos"][i]] == i for i in range(len(vocab)))
    return os.path.join(out, "ckpt.pt")


def check_round_trip(tmp, text_path, st, ckpt_pt, tag):
    back = os.path.join(tmp, "back_%s.safetensors" % tag)
    convert("from-nanogpt", ckpt_pt, back)
    t0, m0 = read_st(st)
    t1, m1 = read_st(back)
    assert m0 == m1, "metadata differs:\n%s\n%s" % (m0, m1)
    assert sorted(t0) == sorted(t1), "tensor names differ"
    for name in t0:
        assert t0[name] == t1[name], "tensor %s differs after the round trip" % name
    resumed = []
    for path in (st, back):
        out = path + ".resumed"
        run([TRAIN_GPT, "--data", text_path, "--resume", path, "--steps", str(int(m0["steps"]) + 3), "--save", out,
             "--threads", "1", "--sample", "0"])
        resumed.append(read_st(out)[0])
    assert resumed[0] == resumed[1], "resuming the round-tripped checkpoint differs from resuming the original"
    print("%s: round trip bit-exact (%d tensors, %d metadata keys); resumes identically" % (tag, len(t0), len(m0)))


def check_mask_buffers(tmp, st):
    """--mask-buffers: nanoGPT's causal masks for PyTorch < 2.0, ignored on the way back."""
    pt = os.path.join(tmp, "nano_1", "masked.pt")
    convert("to-nanogpt", st, pt, "--mask-buffers")
    sd = torch.load(pt)["model"]
    masks = [k for k in sd if k.endswith(".attn.bias")]
    assert masks == ["transformer.h.0.attn.bias", "transformer.h.1.attn.bias"], masks
    assert torch.equal(sd[masks[0]], torch.ones(CTX, CTX).tril().view(1, 1, CTX, CTX))
    back = os.path.join(tmp, "masked.safetensors")
    convert("from-nanogpt", pt, back)
    assert read_st(back) == read_st(st), "--mask-buffers changed the round trip"
    print("--mask-buffers: two causal masks; the round trip still exact")


def check_from_nanogpt(tmp, text, text_path):
    data, vocab = tokens(text)
    a = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": CTX, "bias": True, "vocab_size": len(vocab),
         "dropout": 0.0}
    torch.manual_seed(0)
    model = GPT(a, gelu="none")  # nanoGPT's own GELU
    for p in model.parameters():
        nn.init.normal_(p, 0.0, 0.02)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    for _ in range(3):
        ix = torch.randint(len(data) - CTX - 1, (4,))
        x = torch.stack([data[i:i + CTX] for i in ix])
        y = torch.stack([data[i + 1:i + CTX + 1] for i in ix])
        loss = F.cross_entropy(model(x).view(-1, len(vocab)), y.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = os.path.join(tmp, "foreign")
    os.mkdir(out)
    sd = {"_orig_mod." + k: v for k, v in model.state_dict().items()}
    torch.save({"model": sd, "optimizer": opt.state_dict(), "model_args": a, "iter_num": 3,
                "best_val_loss": torch.tensor(2.5),
                "config": {"learning_rate": 1e-3, "max_iters": 40, "min_lr": 1e-4, "warmup_iters": 10,
                           "batch_size": 4, "beta2": 0.95, "grad_clip": 1.0, "dataset": "x"}},
               os.path.join(out, "ckpt.pt"))
    itos = {i: chr(c) for i, c in enumerate(vocab)}
    pickle.dump({"vocab_size": len(vocab), "itos": itos, "stoi": {c: i for i, c in itos.items()}},
                open(os.path.join(out, "meta.pkl"), "wb"))
    st = os.path.join(tmp, "foreign.safetensors")
    r = convert("from-nanogpt", os.path.join(out, "ckpt.pt"), st)
    assert "erf" in r.stderr, "no GELU warning: %r" % r.stderr
    tensors, meta = read_st(st)
    for name, p in model.named_parameters():
        assert torch.equal(as_tensor(tensors[name]), p.detach()), name
        assert torch.equal(as_tensor(tensors["optim.m." + name]), opt.state[p]["exp_avg"]), name
        assert torch.equal(as_tensor(tensors["optim.v." + name]), opt.state[p]["exp_avg_sq"]), name
    want = {"step": "3", "optim_steps": "3", "steps": "40", "batch": "4", "beta2": "0.949999988", "warmup": "10",
            "task": "text", "chars": ",".join(map(str, vocab)), "bias": "1", "layers": "1"}
    assert {k: meta[k] for k in want} == want, meta
    run([TRAIN_GPT, "--data", text_path, "--resume", st, "--steps", "5", "--threads", "1", "--sample", "0"])
    print("nanoGPT-made checkpoint: parameters and AdamW moments exact, resumes in train_gpt")
    return os.path.join(out, "ckpt.pt")


def check_refusals(tmp, text_path, foreign_pt):
    post = os.path.join(tmp, "post.safetensors")
    run([TRAIN_GPT, "--data", text_path, "--layers", "1", "--norm", "post", "--steps", "1", "--save", post]
        + MODEL_FLAGS)
    r = convert("to-nanogpt", post, os.path.join(tmp, "post.pt"), expect=2)
    assert "Pre-LN" in r.stderr and not os.path.exists(os.path.join(tmp, "post.pt")), r.stderr
    cut = os.path.join(tmp, "cut.safetensors")
    open(cut, "wb").write(open(post, "rb").read()[:1000])
    r = convert("to-nanogpt", cut, os.path.join(tmp, "cut.pt"), expect=2)
    assert "cut.safetensors" in r.stderr and "Traceback" not in r.stderr, r.stderr

    ck = torch.load(foreign_pt)
    ck["model"]["lm_head.weight"] = ck["model"]["_orig_mod.transformer.wte.weight"] + 1
    untied = os.path.join(tmp, "foreign", "untied.pt")
    torch.save(ck, untied)
    r = convert("from-nanogpt", untied, os.path.join(tmp, "untied.safetensors"), expect=2)
    assert "tied" in r.stderr, r.stderr

    marker = os.path.join(tmp, "pwned")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + marker,))

    ck["model"]["lm_head.weight"] = ck["model"]["_orig_mod.transformer.wte.weight"]
    ck["config"]["x"] = Evil()
    evil = os.path.join(tmp, "foreign", "evil.pt")
    torch.save(ck, evil)
    r = convert("from-nanogpt", evil, os.path.join(tmp, "evil.safetensors"), expect=2)
    assert not os.path.exists(marker) and "system" in r.stderr, r.stderr
    print("refused: Post-LN, a truncated file, an untied head, a pickle that runs code")


def main():
    with tempfile.TemporaryDirectory(prefix="tg_nanogpt_") as tmp:
        words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jumbo pack".split()
        g = torch.Generator().manual_seed(1)
        lines = [" ".join(words[int(i)] for i in torch.randint(len(words), (10,), generator=g)) for _ in range(300)]
        text = ("\n".join(lines) + "\n").encode()
        text_path = os.path.join(tmp, "text.txt")
        open(text_path, "wb").write(text)
        for bias, layers in ((True, 2), (False, 1)):
            st, log = os.path.join(tmp, "tg_%d.safetensors" % bias), os.path.join(tmp, "log_%d.csv" % bias)
            run([TRAIN_GPT, "--data", text_path, "--layers", str(layers), "--steps", "60", "--eval-every", "60",
                 "--eval-full", "--log", log, "--save", st] + MODEL_FLAGS + ([] if bias else ["--no-bias"]))
            pt = check_to_nanogpt(tmp, text, st, log, bias)
            check_round_trip(tmp, text_path, st, pt, "bias=%s" % bias)
        check_mask_buffers(tmp, os.path.join(tmp, "tg_1.safetensors"))
        foreign = check_from_nanogpt(tmp, text, text_path)
        check_refusals(tmp, text_path, foreign)
    return 0


if __name__ == "__main__":
    sys.exit(main())
