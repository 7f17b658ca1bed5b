#!/usr/bin/env python3
"""Does train.py's model learn to copy? A small CPU check of the training code.

Trains a tiny version of train.py's model (2 layers, dim 128, 2 query heads
and 1 KV head of dimension 128, 256-byte windows, batch 16, AdamW) on one of
three kinds of window and prints the loss on the bytes that only copying can
predict, every 50 steps:

    copy   a random string of 128 letters and digits, then the same string
           again; loss on the second copy from its fourth byte (chance:
           ln 36 = 3.58 nats). The copy is always 128 bytes back, so a head
           attending to a fixed relative position solves it: no content
           matching needed
    shift  random letters and digits throughout, with a string of 24-40 of
           them occurring twice at random places: the copy is at a varying
           distance, so only matching content finds it
    embed  corpus text (.data/train.txt) with one random string of 24-40
           symbols inserted twice, loss weight 4 on the second copy (train.py's
           copy task, at this small scale)
    curr   copy for the first 120 steps, then embed
    mixed  half the windows of every batch copy, half embed; the copy loss
           is printed for each half

Runs on the CPU with Debian's PyTorch 1.13 (apt install python3-torch), which
has no F.scaled_dot_product_attention: the script supplies an explicit causal
softmax attention with the same arguments. About 2.4 s per step on 2 cores.

    python3 train/copy_check.py copy --steps 300
    python3 train/copy_check.py embed --steps 300
    python3 train/copy_check.py curr --steps 300
    python3 train/copy_check.py mixed --steps 300
"""
import argparse
import importlib.util
import math
import os
import random
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def causal_attention(q, k, v, is_causal=True):
    """softmax(q k^T / sqrt(d)) v with the causal mask: [B, H, T, d]."""
    T = q.shape[-2]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return att.softmax(-1) @ v


def load_train_py():
    """train.py as a module, with the pieces torch 1.13 and this machine lack stubbed."""
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = causal_attention
    if "torch._dynamo" not in sys.modules:
        try:
            import torch._dynamo  # noqa: F401
        except ImportError:
            sys.modules["torch._dynamo"] = types.ModuleType("torch._dynamo")
    if "safetensors.torch" not in sys.modules:
        try:
            import safetensors.torch  # noqa: F401
        except ImportError:
            st = types.ModuleType("safetensors.torch")
            st.save_file = None
            sys.modules["safetensors"] = types.ModuleType("safetensors")
            sys.modules["safetensors.torch"] = st
    spec = importlib.util.spec_from_file_location("train", os.path.join(HERE, "train.py"))
    t = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(t)
    return t


def window(t, rng, data, kind, seq, lo=24, hi=40):
    """ids [seq+1], loss weights [seq], copy mask [seq] for one window."""
    w = np.zeros(seq, dtype=np.float32)
    copy = np.zeros(seq, dtype=bool)
    if kind == "copy":
        half = seq // 2
        s = bytes(rng.choice(ALNUM.encode()) for _ in range(half))
        out = bytes([0]) + s + s[: seq - half]
        a0, a1 = half + 1 + 3, seq + 1  # token positions of the second copy from its fourth byte
    else:
        s = (" " + "".join(rng.choice(ALNUM) for _ in range(rng.randint(lo, hi))) + " ").encode()
        n = seq - 2 * len(s)
        if kind == "shift":
            text = "".join(rng.choice(ALNUM) for _ in range(n)).encode()
        else:
            st = rng.randrange(0, len(data) - n)
            text = bytes(data[st : st + n])
        p1 = rng.randrange(0, n // 2)
        p2 = rng.randrange(p1, n + 1)
        out = bytes([0]) + text[:p1] + s + text[p1:p2]
        a0 = len(out) + 4  # after " " and three locating bytes
        a1 = len(out) + len(s) - 1  # before the trailing " "
        out += s + text[p2:]
        w[:] = 1 if kind == "embed" else 0
    ids = np.frombuffer(out, dtype=np.uint8).astype(np.int64)
    ids[0] = t.BOS
    w[a0 - 1 : a1 - 1] = t.ANSWER_WEIGHT if kind == "embed" else 1  # token i is predicted by slot i-1
    copy[a0 - 1 : a1 - 1] = True
    return ids, w, copy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["copy", "shift", "embed", "curr", "mixed"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data", default=os.path.join(HERE, "..", ".data", "train.txt"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast on cuda)")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    ap.add_argument("--every", type=int, default=50, help="print every this many steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--len", default="24,40", help="shortest,longest random string (shift, embed)")
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.len.split(","))
    torch.set_num_threads(a.threads)
    t = load_train_py()
    seq = a.seq
    c = {"dim": a.dim, "n_layers": a.layers, "n_heads": a.heads, "n_kv_heads": a.kv_heads, "head_dim": 128,
         "hidden_dim": a.hidden, "vocab_size": t.VOCAB, "rope_theta": 10000.0, "max_seq_len": seq, "norm_eps": 1e-5}
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    print(f"args {vars(a)}", flush=True)
    data = np.frombuffer(open(a.data, "rb").read(), dtype=np.uint8) if a.kind not in ("copy", "shift") else None
    model = t.Llama(c).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    half = a.device != "cpu"
    t0 = time.time()
    for step in range(1, a.steps + 1):
        kind = a.kind if a.kind != "curr" else ("copy" if step <= 120 else "embed")
        nb = a.batch
        kinds = [kind] * nb if kind != "mixed" else ["copy"] * (nb // 2) + ["embed"] * (nb - nb // 2)
        ids, w, cp = zip(*(window(t, rng, data, k, seq, lo, hi) for k in kinds))
        x, w, cp = (torch.from_numpy(np.stack(v)).to(a.device) for v in (ids, w, cp))
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, step / a.warmup) if a.warmup else a.lr
        if half:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(x[:, :-1])
        else:
            logits = model(x[:, :-1])
        ce = F.cross_entropy(logits.float().reshape(-1, t.VOCAB), x[:, 1:].reshape(-1), reduction="none").view_as(w)
        loss = (ce * w).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % a.every == 0 or step == 1:
            with torch.no_grad():
                text = ce[~cp & (w > 0)]
                extra = ""
                if kind == "mixed":
                    h = nb // 2
                    extra = f" (pure {ce[:h][cp[:h]].mean().item():.3f}, in text {ce[h:][cp[h:]].mean().item():.3f})"
                print(f"step {step} t {time.time() - t0:.0f}s {kind} copy_loss {ce[cp].mean().item():.3f}{extra} "
                      f"text_loss {text.mean().item() if text.numel() else float('nan'):.3f}", flush=True)


if __name__ == "__main__":
    main()
