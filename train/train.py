#!/usr/bin/env python3
"""Train the small Llama-style model whose forward pass package model (Go) runs.

The architecture is exactly the one of model/forward.go, so the weights this
script writes load there unchanged:

    tokens  byte-level: ids 0..255 are the bytes, 256 = BOS, 257 = EOS (vocab 258)
    x       = embed_tokens[token]                                      [T, dim]
    per layer:
      h     = RMSNorm(x) * input_layernorm                             [T, dim]
      q     = h @ q_proj^T -> [Hq, T, 128];  k, v = h @ {k,v}_proj^T -> [Hkv, T, 128]
      q, k  = RoPE, non-interleaved ("rotate half", Hugging Face layout),
              freq_i = theta^(-2i/128), angles computed in float64
      o     = causal softmax(q k^T / sqrt(128)) v, query head h reads KV head h // G
      x     = x + o @ o_proj^T
      h     = RMSNorm(x) * post_attention_layernorm
      x     = x + down_proj(silu(gate_proj(h)) * up_proj(h))
    logits  = RMSNorm(x) * norm @ lm_head^T                            [T, vocab]
    RMSNorm(x) = x / sqrt(mean(x^2) + eps)

Tensor names follow Hugging Face's Llama (model.layers.N.self_attn.q_proj.weight,
...), stored in bf16 in safetensors shards of at most two layers each (every file
well under 16 MB), with config.json beside them.

Training data (train/prepare_data.sh builds it): train.txt, a byte stream of
State of the Union addresses 1790-2000 and the King James Bible. Every training
window is 4096 tokens (BOS + 4095 bytes) of it; in 80 % of windows retrieval tasks
are spliced in at random positions (see make_window: pass keys, key-value
"magic number" needles with questions, random strings that occur twice), so the model learns
to copy a value from anywhere in its context. The answer bytes carry loss weight
ANSWER_WEIGHT; every other byte weight 1.

At the end it measures, with dense attention on the GPU, pass-key accuracy on the
held-out addresses (2001-2021) and the held-out bits per byte, writes eval.json,
and writes golden.json: float32 logits of the final (bf16-rounded) weights for a
fixed prompt, computed on the CPU, which model/golden_test.go compares with the Go
forward pass.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch._dynamo
import torch.nn.functional as F
from safetensors.torch import save_file

BOS, EOS, VOCAB = 256, 257, 258
ANSWER_WEIGHT = 4.0
TASK_PASSKEY, TASK_KV, TASK_COPY, TASK_SHIFT = 1, 2, 3, 4  # answer kinds, logged separately
# Copy tasks (random strings that occur twice): the probability a window has
# them, at most how many, and their longest length. Run 3 raised them from
# 0.6 / 4 / 48 so that copying carries a larger share of the loss.
COPY_P, COPY_MAX, COPY_LEN = 0.9, 6, 64


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------
# Model


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def rope_tables(seq, d, theta, device):
    """cos, sin: [seq, d], angles pos * theta^(-2i/d) in float64, then float32."""
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # [d/2]
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]  # [seq, d/2]
    ang = torch.cat([ang, ang], dim=-1)  # [seq, d]
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x, cos, sin):
    """x: [B, H, T, d]; Hugging Face's q*cos + rotate_half(q)*sin."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rot = torch.cat([-x2, x1], dim=-1)
    return x * cos + rot * sin


class Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.hq, self.hkv, self.d = c["n_heads"], c["n_kv_heads"], c["head_dim"]
        dim = c["dim"]
        self.q_proj = torch.nn.Linear(dim, self.hq * self.d, bias=False)
        self.k_proj = torch.nn.Linear(dim, self.hkv * self.d, bias=False)
        self.v_proj = torch.nn.Linear(dim, self.hkv * self.d, bias=False)
        self.o_proj = torch.nn.Linear(self.hq * self.d, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.hq, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)
        g = self.hq // self.hkv
        k = k.repeat_interleave(g, dim=1)  # query head h reads KV head h // g
        v = v.repeat_interleave(g, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.hq * self.d))


class MLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = torch.nn.Linear(c["dim"], c["hidden_dim"], bias=False)
        self.up_proj = torch.nn.Linear(c["dim"], c["hidden_dim"], bias=False)
        self.down_proj = torch.nn.Linear(c["hidden_dim"], c["dim"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["dim"], c["norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["dim"], c["norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(c["vocab_size"], c["dim"])
        self.layers = torch.nn.ModuleList([Layer(c) for _ in range(c["n_layers"])])
        self.norm = RMSNorm(c["dim"], c["norm_eps"])


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = torch.nn.Linear(c["dim"], c["vocab_size"], bias=False)
        cos, sin = rope_tables(2 * c["max_seq_len"], c["head_dim"], c["rope_theta"], "cpu")
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                    std = 0.02 / math.sqrt(2 * c["n_layers"])
                torch.nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


# ----------------------------------------------------------------------------
# Data: byte windows with retrieval tasks spliced in

WORDS = (
    "apple river lantern copper meadow falcon harbor violet canyon ember "
    "glacier orchid pepper saddle thistle walnut anchor beacon cobalt dune "
    "feather granite hazel island jasper kettle lemon marble nectar oyster "
    "pebble quartz raven silver timber umber velvet willow yarrow zephyr "
    "badger candle dragon engine forest garden hammer igloo jungle kitten "
    "ladder mirror needle onion parrot quiver rocket spider tunnel unicorn"
).split()


ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def passkey_texts(rng, key):
    needle = [
        f" The pass key is {key}. Remember it. {key} is the pass key. ",
        f" The pass key is {key}. Remember it. ",
        f" Remember this: the pass key is {key}. ",
        f" The passkey is {key}. Keep it in mind. {key} is the passkey. ",
    ][rng.randrange(4)]
    if "passkey" in needle:
        question = " What is the passkey? The passkey is "
    else:
        question = " What is the pass key? The pass key is "
    return needle, question, key


def kv_texts(rng, word, num):  # noqa: D103
    needle = [
        f" The special magic number for {word} is: {num}. ",
        f" One of the special magic numbers for {word} is: {num}. ",
    ][rng.randrange(2)]
    question = f" What is the special magic number for {word}? The special magic number for {word} is: "
    return needle, question, num


def digits(rng, lo, hi):
    n = rng.randint(lo, hi)
    return str(rng.randint(10 ** (n - 1), 10**n - 1))


def snap(text, p, n):
    """Move p forward past the next space within 40 bytes (a word boundary)."""
    j = text.find(b" ", p, min(p + 40, n))
    return p if j < 0 else j + 1


def make_window(data, rng, seq, synthetic=False):
    """One training window: ids [seq+1] (BOS first), loss weights [seq] on targets, task kinds [seq].

    Text windows (synthetic False): corpus text with, in half of the windows, a
    pass key (asked once or twice), in 80 % two to eight key-value needles of
    which one to three are asked, and in COPY_P of them one to COPY_MAX random
    strings of 8-COPY_LEN letters and digits that occur twice: copying them is
    the only way to predict them, which rewards induction heads (the corpus
    itself is small enough to be memorised, which earlier runs did instead of
    learning to copy). Insertions take at most half of the window (the ones
    that do not fit are left out, so short windows get fewer). Needles and
    first occurrences go anywhere in the first 90 % of the text; each question
    or second occurrence anywhere after, or at the very end. Loss weight 1 on
    text bytes and ANSWER_WEIGHT on the answer digits and on the second
    occurrence of a string from its fourth byte on (the first three locate it).

    Synthetic windows: random letters and digits in place of the corpus, with
    one random string of 8-COPY_LEN symbols occurring twice per 256 bytes of
    window, and loss only on the second occurrences (weight ANSWER_WEIGHT): a
    copy at a varying distance among look-alike symbols, which only content
    matching solves (copy_check.py's shift task). From scratch the model
    learns this in about a thousand steps at 256-byte windows and not at all
    in two thousand at 1024 (train/README.md), which is what the window-length
    curriculum of --phases is for.
    """
    items = []  # (needle, [(question, answer digits)], task)
    if not synthetic:
        if rng.random() < 0.5:
            nd, qu, key = passkey_texts(rng, digits(rng, 3, 7))
            items.append((nd, [(qu, key)] * rng.randint(1, 2), TASK_PASSKEY))
        if rng.random() < 0.8:
            words = rng.sample(WORDS, rng.randint(2, max(2, min(8, seq // 512))))
            asked = set(rng.sample(range(len(words)), rng.randint(1, min(3, len(words)))))
            for i, wd in enumerate(words):
                nd, qu, num = kv_texts(rng, wd, digits(rng, 5, 7))
                items.append((nd, [(qu, num)] if i in asked else [], TASK_KV))
    copies = []
    ncopy = max(1, seq // 256) if synthetic else (rng.randint(1, max(1, min(COPY_MAX, seq // 512))) if rng.random() < COPY_P else 0)
    for _ in range(ncopy):
        copies.append(" " + "".join(rng.choice(ALNUM) for _ in range(rng.randint(8, COPY_LEN))) + " ")
    # Keep what fits in half of the window, in the order drawn.
    room = seq // 2

    def fits(size):
        nonlocal room
        if size > room:
            return False
        room -= size
        return True

    items = [it for it in items if fits(len(it[0]) + sum(len(q) + len(a) + 2 for q, a in it[1]))]
    copies = [cs for cs in copies if fits(2 * len(cs))]
    n = seq - (seq // 2 - room)  # bytes of corpus text (or random filler): the rest of the window
    if synthetic:
        g = np.random.default_rng(rng.getrandbits(63))
        text = np.frombuffer(ALNUM.encode(), dtype=np.uint8)[g.integers(0, len(ALNUM), n)].tobytes()
    else:
        s = rng.randrange(0, len(data) - n)
        text = bytes(data[s : s + n])
    pieces = []  # (pos in text, order, bytes, answer offset in bytes, answer length, task)
    for nd, qs, task in items:
        p = snap(text, rng.randrange(0, int(n * 0.9) + 1), n)
        pieces.append((p, 0, nd.encode(), 0, 0, task))
        for q, a in qs:
            qp = n if rng.random() < 0.3 else snap(text, rng.randrange(p, n + 1), n)
            pieces.append((qp, 1, (q + a + ". ").encode(), len(q), len(a), task))
    task_copy = TASK_SHIFT if synthetic else TASK_COPY
    for cs in copies:
        p = snap(text, rng.randrange(0, int(n * 0.9) + 1), n)
        pieces.append((p, 0, cs.encode(), 0, 0, task_copy))
        qp = n if rng.random() < 0.3 else snap(text, rng.randrange(p, n + 1), n)
        pieces.append((qp, 1, cs.encode(), 4, len(cs) - 5, task_copy))  # " " + 3 locating bytes, trailing " "
    pieces.sort(key=lambda t: (t[0], t[1]))
    out = bytearray([0])  # placeholder for BOS
    ans_spans = []
    prev = 0
    for p, _, b, astart, alen, task in pieces:
        out += text[prev:p]
        if alen:
            ans_spans.append((len(out) + astart, len(out) + astart + alen, task))
        out += b
        prev = p
    out += text[prev:]
    assert len(out) == seq + 1, (len(out), seq)
    ids = np.frombuffer(bytes(out), dtype=np.uint8).astype(np.int64)
    ids[0] = BOS
    w = np.full(seq, 0.0 if synthetic else 1.0, dtype=np.float32)
    kind = np.zeros(seq, dtype=np.int64)  # TASK_* of each target slot, 0: plain text
    for a, b, task in ans_spans:  # token at index t is predicted by target slot t-1
        w[a - 1 : b - 1] = ANSWER_WEIGHT
        kind[a - 1 : b - 1] = task
    return ids, w, kind


def parse_phases(spec, train_seconds):
    """--phases "seq:batch:synthetic:fraction,..." -> [(end second, seq, batch, synthetic fraction)].

    Each phase trains on windows of seq tokens, batch windows a step, of which
    the given fraction are synthetic (make_window), for its fraction of the
    training time; the fractions must add up to 1.
    """
    out, t = [], 0.0
    for part in spec.split(","):
        f = part.split(":")
        if len(f) != 4:
            raise SystemExit(f"--phases {spec!r}: phase {part!r}: want seq:batch:synthetic:fraction")
        seq, bs, syn, frac = int(f[0]), int(f[1]), float(f[2]), float(f[3])
        if seq < 128 or bs < 1 or not 0 <= syn <= 1 or frac <= 0:
            raise SystemExit(f"--phases {spec!r}: phase {part!r}: want seq >= 128, batch >= 1, 0 <= synthetic <= 1, fraction > 0")
        t += frac
        out.append((t * train_seconds, seq, bs, syn))
    if abs(t - 1) > 1e-6:
        raise SystemExit(f"--phases {spec!r}: the fractions add up to {t}, want 1")
    return out


def batch(data, rng, seq, bs, synthetic, device):
    """One batch: round(bs * synthetic) synthetic windows, the rest text windows."""
    ns = round(bs * synthetic)
    ids, ws, ks = zip(*(make_window(data, rng, seq, i < ns) for i in range(bs)))
    x = torch.from_numpy(np.stack(ids)).pin_memory().to(device, non_blocking=True)
    w = torch.from_numpy(np.stack(ws)).pin_memory().to(device, non_blocking=True)
    k = torch.from_numpy(np.stack(ks)).pin_memory().to(device, non_blocking=True)
    return x, w, k


# ----------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(model, c, outdir, layers_per_shard=2):
    sd = {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    L = c["n_layers"]
    groups = [list(range(i, min(i + layers_per_shard, L))) for i in range(0, L, layers_per_shard)]
    nshard = len(groups)
    for si, g in enumerate(groups):
        part = {}
        for k, v in sd.items():
            if k.startswith("model.layers."):
                if int(k.split(".")[2]) in g:
                    part[k] = v
            elif si == 0:
                part[k] = v
        name = f"model-{si + 1:05d}-of-{nshard:05d}.safetensors"
        tmp = os.path.join(outdir, "tmp." + name)
        save_file(part, tmp, metadata={"format": "pt"})
        os.replace(tmp, os.path.join(outdir, name))
    with open(os.path.join(outdir, "config.json.tmp"), "w") as f:
        json.dump(c, f, indent=1)
    os.replace(os.path.join(outdir, "config.json.tmp"), os.path.join(outdir, "config.json"))


def bf16_copy(model, c):
    """A float32 CPU copy of model whose weights are rounded to bf16, as saved."""
    m = Llama(c)
    m.load_state_dict({k: v.detach().to("cpu", torch.bfloat16).float() for k, v in model.state_dict().items()})
    return m.eval()


# ----------------------------------------------------------------------------
# Evaluation (dense attention)

NIAH_NEEDLE = " The pass key is {k}. Remember it. {k} is the pass key. "
NIAH_QUESTION = " What is the pass key? The pass key is"


def niah_prompt(hay, ctx, depth, key):
    """BOS + haystack with the needle at depth + question; exactly ctx tokens.

    The needle goes at the first word boundary at or after depth * len(haystack).
    model/eval.go builds the same prompt.
    """
    nd, qu = NIAH_NEEDLE.format(k=key).encode(), NIAH_QUESTION.encode()
    n = ctx - 1 - len(nd) - len(qu)
    h = hay[:n]
    p = int(depth * n)
    if 0 < p < n:
        j = h.find(b" ", p)
        p = n if j < 0 else j + 1
    return [BOS] + list(h[:p] + nd + h[p:] + qu)


@torch.no_grad()
def greedy(model, prompts, steps):
    x = torch.tensor(prompts, device="cuda")
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            nxt = model(x)[:, -1].argmax(-1)
        x = torch.cat([x, nxt[:, None]], dim=1)
    return x[:, -steps:].tolist()


@torch.no_grad()
def evaluate(model, c, heldout, ctxs, depths, trials, seed=1234):
    model.eval()
    rng = random.Random(seed)
    res = {"passkey": []}
    for ctx in ctxs:
        for depth in depths:
            prompts, keys = [], []
            for t in range(trials):
                key = str(rng.randint(10000, 99999))
                off = rng.randrange(0, len(heldout) - ctx)
                prompts.append(niah_prompt(heldout[off:], ctx, depth, key))
                keys.append(key)
            outs = greedy(model, prompts, 6)
            ok = sum(bytes(min(t, 63) if t > 255 else t for t in o) == (" " + k).encode() for o, k in zip(outs, keys))
            res["passkey"].append({"ctx": ctx, "depth": depth, "trials": trials, "correct": ok})
    # Held-out bits per byte over disjoint windows of max_seq_len.
    seq = c["max_seq_len"]
    data = np.frombuffer(heldout, dtype=np.uint8).astype(np.int64)
    nwin = min(32, (len(data) - 1) // (seq - 1))
    tot, cnt = 0.0, 0
    for i in range(0, nwin, 8):
        xs = []
        for j in range(i, min(i + 8, nwin)):
            w = data[j * (seq - 1) : (j + 1) * (seq - 1) + 1].copy()
            xs.append(np.concatenate([[BOS], w]))
        x = torch.tensor(np.stack(xs), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg = model(x[:, :-1]).float()
        loss = F.cross_entropy(lg.reshape(-1, VOCAB), x[:, 1:].reshape(-1), reduction="sum")
        tot += loss.item()
        cnt += x[:, 1:].numel()
    res["heldout_bits_per_byte"] = tot / cnt / math.log(2)
    res["heldout_tokens"] = cnt
    model.train()
    return res


GOLDEN_PROMPT = (
    "The pass key is 48213. Remember it. 48213 is the pass key. "
    "Fellow citizens, the state of our Union is strong. What is the pass key? The pass key is"
)


def write_golden(model, c, path):
    m = bf16_copy(model, c)
    ids = [BOS] + list(GOLDEN_PROMPT.encode())
    with torch.no_grad():
        lg = m(torch.tensor([ids]))[0].double()  # [T, vocab], float32 math on the CPU
    T = len(ids)
    rows = {str(p): lg[p].tolist() for p in (0, T // 2, T - 1)}
    g = {
        "prompt": GOLDEN_PROMPT,
        "tokens": ids,
        "logits": rows,
        "argmax_last": int(lg[T - 1].argmax()),
        "note": "float32 CPU forward of the bf16-rounded weights in weights/; logits of positions 0, T/2, T-1, all vocab entries",
    }
    with open(path, "w") as f:
        json.dump(g, f)


# ----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".data")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--train-seconds", type=float, default=420)
    ap.add_argument("--save-every", type=float, default=60)
    ap.add_argument("--phases", default="",
                    help='window-length curriculum "seq:batch:synthetic:fraction,...", e.g. '
                         '"256:64:0.5:0.15,1024:32:0.5:0.2,4096:16:0.25:0.65" (default: --seq:--batch:0:1); '
                         'the last phase\'s seq is the model\'s context')
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-ctx", default="1024,2048,4096")
    ap.add_argument("--eval-trials", type=int, default=20)
    a = ap.parse_args()

    phases = parse_phases(a.phases or f"{a.seq}:{a.batch}:0:1", a.train_seconds)
    a.seq = phases[-1][1]
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(a.out, exist_ok=True)
    c = {
        "architecture": "llama",
        "dim": a.dim,
        "n_layers": a.layers,
        "n_heads": a.heads,
        "n_kv_heads": a.kv_heads,
        "head_dim": 128,
        "hidden_dim": a.hidden,
        "vocab_size": VOCAB,
        "rope_theta": 10000.0,
        "max_seq_len": a.seq,
        "norm_eps": 1e-5,
        "tied": False,
        "tokenizer": "bytes",
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "dtype": "bfloat16",
    }
    train = open(os.path.join(a.data, "train.txt"), "rb").read()
    heldout = open(os.path.join(a.data, "heldout.txt"), "rb").read()
    data = np.frombuffer(train, dtype=np.uint8)
    log(f"config {json.dumps(c)}")
    log(f"args {vars(a)}")
    log(f"train bytes {len(train)} heldout bytes {len(heldout)} torch {torch.__version__} {torch.cuda.get_device_name()}")

    model = Llama(c).cuda()
    nparam = sum(p.numel() for p in model.parameters())
    log(f"parameters {nparam}")
    fwd = model
    if a.compile:
        torch._dynamo.config.suppress_errors = True
        fwd = torch.compile(model, dynamic=False)  # one static graph per window length
    decay = [p for p in model.parameters() if p.dim() == 2]
    nodecay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True,
    )
    rng = random.Random(a.seed)
    tokens = 0
    phase = -1
    t0 = time.time()
    last_save = t0
    step = 0
    ema = None
    while True:
        el = time.time() - t0
        frac = min(1.0, el / a.train_seconds)
        if frac >= 1.0:
            break
        # Warmup over steps, then cosine over wall time down to 5 % of the peak.
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        p = next(i for i, ph in enumerate(phases) if el < ph[0] or i == len(phases) - 1)
        if p != phase:
            phase = p
            log(f"phase {p}: windows of {phases[p][1]} tokens, {phases[p][2]} a step, {phases[p][3]:.0%} synthetic, from {el:.1f}s")
        _, seq, bs, syn = phases[p]
        x, w, kind = batch(data, rng, seq, bs, syn, "cuda")
        tokens += x[:, 1:].numel()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x[:, :-1])
        ce = F.cross_entropy(logits.float().reshape(-1, VOCAB), x[:, 1:].reshape(-1), reduction="none").view_as(w)
        loss = (ce * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            with torch.no_grad():
                tm = w == 1  # corpus text bytes (synthetic filler has weight 0)
                plain = ce[tm].mean().item() if tm.any() else float("nan")
                am = w > 1
                ans = (ce[am].mean().item() if am.any() else float("nan"))
                per = []
                for name, t in (("passkey", TASK_PASSKEY), ("kv", TASK_KV), ("copy", TASK_COPY), ("shift", TASK_SHIFT)):
                    m = kind == t
                    per.append(f"{name} {ce[m].mean().item() if m.any() else float('nan'):.3f}")
            ema = plain if ema is None else 0.9 * ema + 0.1 * plain
            el = time.time() - t0
            tps = tokens / el
            log(f"step {step} t {el:.1f}s lr {lr:.2e} loss {plain:.4f} bpb {plain / math.log(2):.3f} "
                f"answer_loss {ans:.4f} ({', '.join(per)}) gnorm {gn.item():.2f} tok/s {tps:.0f}")
        if time.time() - last_save >= a.save_every:
            save_checkpoint(model, c, a.out)
            last_save = time.time()
            log(f"checkpoint at step {step}, {last_save - t0:.0f}s")
    log(f"training done: {step} steps, {tokens} tokens, {time.time() - t0:.1f}s")
    save_checkpoint(model, c, a.out)
    write_golden(model, c, os.path.join(a.out, "golden.json"))
    log("golden written")
    ctxs = [int(s) for s in a.eval_ctx.split(",") if int(s) <= a.seq]
    res = evaluate(model, c, heldout, ctxs, [0.0, 0.25, 0.5, 0.75, 1.0], a.eval_trials)
    res["steps"] = step
    res["train_seconds"] = a.train_seconds
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    for r in res["passkey"]:
        log(f"passkey ctx {r['ctx']} depth {r['depth']:.2f}: {r['correct']}/{r['trials']}")
    log(f"heldout bits/byte {res['heldout_bits_per_byte']:.4f} over {res['heldout_tokens']} bytes")
    log(f"total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
