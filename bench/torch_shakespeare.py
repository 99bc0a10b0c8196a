#!/usr/bin/env python3
"""train_gpt's --data run in PyTorch: the same model (the from-scratch
PyTorch GPT of tests/fixtures/make_gpt_fixtures.py, built from the documented
architecture), the same initialisation rule, data split, batches of random
windows, AdamW (decay on tensors of two or more dimensions), warm-up + cosine
schedule and clipping, with nanoGPT's shakespeare-char CPU configuration as
the default. It answers two questions: how fast PyTorch trains this exact
model here, and what validation loss the configuration reaches when PyTorch
trains it (with different random numbers, so compare across seeds).

    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_shakespeare.py [FILE] [--seed N] [--threads N] [--nanogpt]
        [--no-full-eval]

--threads 0 leaves PyTorch's own default (a thread per core).

FILE defaults to ../shared/data/tinyshakespeare.txt (from the repository
root); every train_gpt default has a flag (--layers --heads --dim --ctx
--batch --steps --lr --min-lr --warmup --weight-decay --beta2 --clip --seed).
Compare with `build/examples/train_gpt --data FILE`. --nanogpt trains the
model of nanoGPT's own shakespeare run instead (no biases, erf GELU), whose
published loss is the issue's target. float32, no dropout, no
torch.compile. Prints a progress line every 100 steps on stderr (step, loss,
mean ms/step over those 100 steps) and, at the end, one line on stdout:

    torch_shakespeare steps N seconds S ms_per_step_median M val_loss V val_loss_full F

val_loss is the mean over --eval-iters random validation batches after the
last step (train_gpt's --eval-iters default is 20; pass --eval-iters 200 to
it for the same estimate); val_loss_full is exact, over the whole
validation split (bench/val_full.py gives the same figure for a train_gpt
checkpoint); seconds is the wall time of the training loop and the median
is over the per-step times. A missing FILE, or one too short for a
window of ctx + 1 tokens in the validation tenth, exits with status 2."""
import argparse
import math
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_gpt_fixtures import GPT, Config  # noqa: E402
from val_full import split_loss  # noqa: E402


def get_lr(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / (a.warmup + 1)
    if step > a.steps:
        return a.min_lr
    r = (step - a.warmup) / (a.steps - a.warmup)
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (a.lr - a.min_lr)


def init(model, layers):
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            torch.nn.init.zeros_(p)
        elif ".ln_" in name:
            torch.nn.init.ones_(p)
        elif name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
        else:
            torch.nn.init.normal_(p, 0.0, 0.02)


def nanogpt_variant(model):
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)):
            m.bias = None
    for blk in model.transformer.h:
        blk.mlp.forward = lambda x, p=blk.mlp: p.c_proj(torch.nn.functional.gelu(p.c_fc(x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt"))
    for flag, typ, default in [("layers", int, 4), ("heads", int, 4), ("dim", int, 128), ("ctx", int, 64),
                               ("batch", int, 12), ("steps", int, 2000), ("lr", float, 1e-3),
                               ("min-lr", float, 1e-4), ("warmup", int, 100), ("weight-decay", float, 0.1),
                               ("beta2", float, 0.99), ("clip", float, 1.0), ("seed", int, 1337),
                               ("eval-iters", int, 200), ("threads", int, 2)]:
        ap.add_argument("--" + flag, type=typ, default=default)
    ap.add_argument("--no-full-eval", action="store_true",
                    help="skip the exact loss over the whole validation split (val_loss_full prints nan)")
    ap.add_argument("--nanogpt", action="store_true",
                    help="nanoGPT's shakespeare run instead of train_gpt's model: no biases in Linear or "
                         "LayerNorm layers (its bias=False) and exact erf GELU")
    a = ap.parse_args()
    if not os.path.isfile(a.data):
        print(f"torch_shakespeare: {a.data}: no such file", file=sys.stderr)
        sys.exit(2)
    if a.dim % a.heads:
        print(f"torch_shakespeare: --heads {a.heads} must divide --dim {a.dim}", file=sys.stderr)
        sys.exit(2)
    if a.threads > 0:  # 0: PyTorch's own default
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    raw = open(a.data, "rb").read()
    vocab = sorted(set(raw))
    index = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([index[c] for c in raw], dtype=torch.long)
    n_train = len(data) * 9 // 10
    splits = {"train": data[:n_train], "val": data[n_train:]}
    if len(splits["val"]) <= a.ctx:
        print(f"torch_shakespeare: {a.data}: {len(raw)} bytes leave {len(splits['val'])} validation tokens, "
              f"fewer than a window of ctx + 1 = {a.ctx + 1}", file=sys.stderr)
        sys.exit(2)

    def batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - a.ctx, (a.batch,))
        return (torch.stack([d[i:i + a.ctx] for i in ix]), torch.stack([d[i + 1:i + 1 + a.ctx] for i in ix]))

    model = GPT(Config(len(vocab), a.ctx, a.layers, a.heads, a.dim, "pre"))
    if a.nanogpt:
        nanogpt_variant(model)
    init(model, a.layers)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": plain, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, a.beta2), eps=1e-8)
    times = []
    start = time.perf_counter()
    for step in range(a.steps):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = get_lr(step, a)
        x, y = batch("train")
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:  # train_gpt: --clip 0 = off
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        times.append(time.perf_counter() - t0)
        if (step + 1) % 100 == 0 or step + 1 == a.steps:
            recent = times[-((step % 100) + 1):]
            print(f"step {step + 1} loss {loss.item():.4f} {1e3 * sum(recent) / len(recent):.1f} ms/step",
                  file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        val = sum(model.loss(*batch("val")).item() for _ in range(a.eval_iters)) / a.eval_iters
    full = float("nan") if a.no_full_eval else split_loss(model, splits["val"], a.ctx)[0]
    print(f"torch_shakespeare steps {a.steps} seconds {seconds:.1f} "
          f"ms_per_step_median {1e3 * statistics.median(times):.2f} val_loss {val:.4f} val_loss_full {full:.4f}")


if __name__ == "__main__":
    main()
