#!/usr/bin/env python3
"""Validation loss of a train_gpt --data checkpoint over the whole validation
split, with no sampling noise: the last tenth of the text cut into
non-overlapping windows of ctx tokens, every window scored once. A 20-batch
random estimate (train_gpt's default --eval-iters) has a standard deviation
of about 0.015 on the shakespeare model, which is larger than the
differences worth measuring between runs; this figure is exact for a given
set of parameters. train_gpt --eval-full computes the same figure in C;
this script is its independent check.

    /usr/bin/python3 bench/val_full.py CHECKPOINT [FILE]

FILE defaults to ../shared/data/tinyshakespeare.txt and must be the text the
checkpoint was trained on (its vocabulary is checked against the
checkpoint's). Prints `val_loss_full V windows N`. Needs PyTorch; the model
is the from-scratch PyTorch GPT of tests/fixtures/make_gpt_fixtures.py, so
checkpoints trained with --no-bias are refused."""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_gpt_fixtures import GPT, Config, load_params, read_safetensors  # noqa: E402


def split_loss(model, val, ctx):
    """Mean cross-entropy over non-overlapping ctx windows of val."""
    n = (len(val) - 1) // ctx
    ids, targets = val[:n * ctx].view(n, ctx), val[1:n * ctx + 1].view(n, ctx)
    with torch.no_grad():
        total = sum(model.loss(ids[i:i + 256], targets[i:i + 256]).item() * len(ids[i:i + 256])
                    for i in range(0, n, 256))
    return total / n, n


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: bench/val_full.py CHECKPOINT [FILE]", file=sys.stderr)
        sys.exit(2)
    path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
    try:
        tensors, meta = read_safetensors(sys.argv[1])
        raw = open(path, "rb").read()
    except (OSError, ValueError) as e:
        print(f"val_full: {e}", file=sys.stderr)
        sys.exit(2)
    if meta.get("task") != "text" or meta.get("bias", "1") != "1":
        print(f"val_full: {sys.argv[1]}: not a train_gpt --data checkpoint with biases", file=sys.stderr)
        sys.exit(2)
    vocab = sorted(set(raw))
    if ",".join(map(str, vocab)) != meta.get("chars"):
        print(f"val_full: {path} has a different vocabulary from {sys.argv[1]}", file=sys.stderr)
        sys.exit(2)
    cfg = Config.from_metadata(meta)
    model = GPT(cfg)
    load_params(model, {k: v for k, v in tensors.items() if k.startswith("transformer.")})
    index = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([index[c] for c in raw], dtype=torch.long)
    loss, n = split_loss(model, data[len(data) * 9 // 10:], cfg.ctx)
    print(f"val_loss_full {loss:.4f} windows {n}")


if __name__ == "__main__":
    main()
