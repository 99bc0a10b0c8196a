#!/usr/bin/env python3
"""Checks a tapegrad gradient dump against PyTorch.

    build/examples/train_gpt --dump-grads /tmp/d.safetensors [model flags...]
    /usr/bin/python3 tools/check_grads_torch.py /tmp/d.safetensors

The dump is a safetensors file holding every parameter under its nanoGPT
name, its gradient as "grad.<name>", the batch as "batch.ids" and
"batch.targets" (I32 [B, T], target -1 = ignored), tapegrad's "loss" (F32
[1]), and string metadata vocab, ctx, layers, heads, dim, norm (pre/post)
and optionally residual_scale.

This rebuilds the same GPT in PyTorch (the model in
tests/fixtures/make_gpt_fixtures.py, written from the architecture documented
in src/nn/gpt.c), loads the dumped parameters, runs forward and backward on
the dumped batch in float64 -- the exact answer for those float32 weights, up
to float64 rounding -- and compares, per parameter tensor:

    max|g - ref|             the largest absolute difference
    max|g - ref| / max|ref|  the same relative to the tensor's largest gradient
    ||g - ref|| / ||ref||    relative L2 norm of the difference

A tensor passes when both relative errors are at most --tol (default 1e-4;
float32 round-off is ~1e-6 on small models, so this is ~100x headroom, and
plausible formula mistakes such as an erf GELU or a wrong LayerNorm eps move
gradients by 1e-4 .. 1). The loss passes when |loss - ref| / |ref| is at most
--loss-tol (default 1e-5). For scale, the same errors of PyTorch's own float32
computation are printed too (column "torch32").

Exit status: 0 when everything is within tolerance, 1 when something is not,
2 when the file cannot be read or does not describe a model.
Needs PyTorch and numpy.
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import torch  # noqa: E402

from make_gpt_fixtures import (  # noqa: E402  (one copy of the model, shared with the fixtures)
    Config, param_names, read_safetensors, reference, rel_errors)


def fail_usage(msg):
    print(f"check_grads_torch: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", help="safetensors file from train_gpt --dump-grads")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="per-tensor max|diff|/max|ref| and relative L2 tolerance (default 1e-4)")
    ap.add_argument("--loss-tol", type=float, default=1e-5, help="relative loss tolerance (default 1e-5)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only failing tensors and the summary")
    args = ap.parse_args()

    try:
        tensors, meta = read_safetensors(args.dump)
    except (OSError, ValueError, KeyError) as e:
        fail_usage(f"cannot read {args.dump}: {e.strerror}" if isinstance(e, OSError) and e.strerror else str(e))
    try:
        cfg = Config.from_metadata(meta)
    except ValueError as e:
        fail_usage(f"{args.dump}: {e}")

    names = param_names(cfg)
    need = names + ["grad." + n for n in names] + ["batch.ids", "batch.targets"]
    missing = [n for n in need if n not in tensors]
    if missing:
        fail_usage(f"{args.dump}: missing {len(missing)} tensors: {', '.join(missing[:6])}"
                   f"{' ...' if len(missing) > 6 else ''}")
    extra = [n for n in tensors if n not in need and n != "loss"]
    ids = tensors["batch.ids"].astype(np.int64)
    targets = tensors["batch.targets"].astype(np.int64)
    if ids.ndim != 2 or ids.shape != targets.shape:
        fail_usage(f"batch.ids {list(ids.shape)} and batch.targets {list(targets.shape)} must be the same [B, T]")
    if ids.shape[1] > cfg.ctx:
        fail_usage(f"sequence length {ids.shape[1]} > ctx {cfg.ctx}")
    if ids.min() < 0 or ids.max() >= cfg.vocab:
        fail_usage(f"batch.ids outside [0, {cfg.vocab})")
    if targets.min() < -1 or targets.max() >= cfg.vocab or not (targets != -1).any():
        fail_usage(f"batch.targets must be in [-1, {cfg.vocab}) with at least one not -1")

    try:
        loss64, g64 = reference(cfg, tensors, ids, targets, torch.float64)
        loss32, g32 = reference(cfg, tensors, ids, targets, torch.float32)
    except (KeyError, ValueError) as e:
        fail_usage(f"{args.dump}: {e}")

    B, T = ids.shape
    print(f"{args.dump}: vocab {cfg.vocab}, ctx {cfg.ctx}, layers {cfg.layers}, heads {cfg.heads}, dim {cfg.dim}, "
          f"{cfg.norm}-LN, residual scale {cfg.residual_scale:g}; batch {B}x{T}, "
          f"{int((targets == -1).sum())} targets ignored")
    if extra:
        print(f"  (ignoring {len(extra)} other tensors: {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''})")

    ok = True
    if "loss" in tensors:
        loss = float(np.asarray(tensors["loss"]).reshape(-1)[0])
        dl = abs(loss - loss64) / abs(loss64)
        ok_loss = dl <= args.loss_tol
        ok &= ok_loss
        print(f"loss: tapegrad {loss:.9g}, PyTorch float64 {loss64:.9g}, relative difference {dl:.3g} "
              f"(PyTorch float32: {abs(loss32 - loss64) / abs(loss64):.3g}) {'ok' if ok_loss else 'FAIL'}")
    else:
        print(f"loss: not in the file; PyTorch float64 {loss64:.9g}")

    hdr = (f"{'parameter':36s} {'shape':>10s} {'max|ref|':>9s} {'max|diff|':>9s} {'/max|ref|':>9s} "
           f"{'rel L2':>9s} {'torch32':>9s}")
    if not args.quiet:
        print(hdr)
    worst_rel, worst_name, n_bad = 0.0, "", 0
    gscale = max(float(np.abs(g).max()) for g in g64.values())
    for n in names:
        g, ref = tensors["grad." + n], g64[n]
        if g.shape != ref.shape:
            fail_usage(f"grad.{n}: shape {list(g.shape)}, parameter is {list(ref.shape)}")
        mx, rmax, rl2 = rel_errors(g, ref)
        t32 = max(rel_errors(g32[n], ref)[1:])
        if not np.abs(ref).max() > 0:  # a gradient that is exactly zero: judge on the model's overall scale
            rmax = rl2 = mx / max(gscale, 1e-30)
        good = bool(np.isfinite(g).all()) and rmax <= args.tol and rl2 <= args.tol
        e = max(rmax, rl2)
        if e > worst_rel or not np.isfinite(e):
            worst_rel, worst_name = e, n
        n_bad += not good
        if not args.quiet or not good:
            shape = "x".join(map(str, ref.shape))
            print(f"{n:36s} {shape:>10s} {np.abs(ref).max():9.3g} {mx:9.3g} {rmax:9.3g} {rl2:9.3g} {t32:9.3g}"
                  f"{'' if good else '  FAIL'}")
    ok &= n_bad == 0
    print(f"{len(names)} parameter tensors, {n_bad} outside tolerance {args.tol:g}; worst relative error "
          f"{worst_rel:.3g} ({worst_name}) -> {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
