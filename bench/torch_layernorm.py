#!/usr/bin/env python3
"""LayerNorm forward + backward in PyTorch, for bench_layernorm's ratio:
torch.nn.functional.layer_norm on a [rows, cols] float32 input that needs a
gradient, with weight and bias, then backward of a fixed upstream gradient.
Best of --runs after a warm-up, printed as one line:

  torch_layernorm rows R cols C threads N ms T

--threads 0 keeps PyTorch's default thread count."""
import argparse
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=768)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = torch.randn(a.rows, a.cols, requires_grad=True)
    w = torch.ones(a.cols, requires_grad=True)
    b = torch.zeros(a.cols, requires_grad=True)
    dy = torch.randn(a.rows, a.cols)
    best = float("inf")
    for i in range(a.runs + 5):
        x.grad = w.grad = b.grad = None
        t0 = time.perf_counter()
        F.layer_norm(x, (a.cols,), w, b, 1e-5).backward(dy)
        dt = time.perf_counter() - t0
        if i >= 5:
            best = min(best, dt)
    print(f"torch_layernorm rows {a.rows} cols {a.cols} threads {torch.get_num_threads()} ms {best * 1e3:.4f}")


if __name__ == "__main__":
    main()
