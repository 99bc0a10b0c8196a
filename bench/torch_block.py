#!/usr/bin/env python3
"""The block of bench_block.c in PyTorch, timed the same way: one Pre-LN
GPT-2 block (float32, no dropout, nanoGPT's layout), loss mean(out * out),
the input requiring a gradient, AdamW with decay on matrices only.

Each phase is timed inside every step; the result is one line for
bench_block to parse, best-of-runs times in ms:

  torch version V threads N fwd_ms F bwd_ms B adamw_ms A step_ms S step_median_ms M rss_mb R

--threads 0 keeps PyTorch's default thread count. bench_block runs it with
its own thread count and OMP_WAIT_POLICY=passive as the second setting.
The threads figure is torch.get_num_threads() only: a torch built on the
system BLAS (Debian's: BLAS_INFO=generic) sends its products to OpenBLAS,
whose own pool ignores it (set OPENBLAS_NUM_THREADS to pin that)."""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads, seq):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.attn_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.gelu = nn.GELU(approximate="tanh")
        self.mlp_proj = nn.Linear(4 * dim, dim)
        self.register_buffer("causal", torch.ones(seq, seq, dtype=torch.bool).tril())
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def attn(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        # torch 2's fused kernel when present; 1.13 has none, so nanoGPT's
        # written-out form.
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(~self.causal[:t, :t], float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="3 runs after 1 warm-up")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.warmup = 3, 1
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)

    block = Block(a.dim, a.heads, a.seq)
    params = list(block.parameters())
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    x = torch.randn(a.batch, a.seq, a.dim, requires_grad=True)

    times = {"fwd": [], "bwd": [], "adamw": [], "step": []}
    for it in range(a.warmup + a.runs):
        t0 = time.perf_counter()
        out = block(x)
        loss = (out * out).mean()
        t1 = time.perf_counter()
        # bench_block zeroes dx inside its backward too.
        opt.zero_grad(set_to_none=True)
        x.grad = None
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if it >= a.warmup:
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[key].append(dt * 1e3)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch version {torch.__version__} threads {torch.get_num_threads()} "
          f"fwd_ms {min(times['fwd']):.3f} bwd_ms {min(times['bwd']):.3f} "
          f"adamw_ms {min(times['adamw']):.3f} step_ms {min(times['step']):.3f} "
          f"step_median_ms {statistics.median(times['step']):.3f} rss_mb {rss_mb:.1f}")


if __name__ == "__main__":
    main()
