#!/usr/bin/python3
"""PyTorch CPU peer of bench/bench.c: the same models, shapes and commands.

    peer.py --serve          one command per stdin line, one JSON line per answer
    peer.py --xcheck DIR     rebuild each checkpoint bench.c wrote into DIR (from the
                             file alone) and reproduce ar.h's log-probabilities of
                             its fixed batch

Commands are those of bench.c (TASK MODEL ALGO BATCH THREADS REPS WARM
[PLACES]); every figure is the median over REPS timed runs after WARM
untimed ones. The models, written the way a PyTorch user would:
  MADE / FVSBN  masked Linear layers, the mask multiplied in every forward
                (the same connectivity rule as ar.h); BCE with logits
  NADE / RNADE  the O(HD) recursion a_{d+1} = a_d + x_d W_d, as a Python
                loop over places ("loop") or as an exclusive cumulative sum
                over a [D,N,H] tensor ("cumsum"); `train` times the ALGO given
                (best: both, reporting the faster)
  Transformer   pre-LayerNorm decoder, hand-kept KV cache (class Tfm)
  LM            bench.c's language model (V 32000, d 288, rotary positions),
                decoded through a preallocated KV cache (class Lm)
  PixelCNN, Gated PixelCNN, WaveNet
                NCHW conv2d/conv1d with padding, masks multiplied into the
                weights (class Cnn); --xcheck proves each is ar.h's model
Sampling: NADE/RNADE/FVSBN one place at a time, O(HD) (FVSBN O(D^2));
MADE and the convolutional models have no cheaper sampler in PyTorch than
D full forward passes ("naive").
"""
import ctypes
import json
import math
import os
import re
import struct
import sys
import time

# torch's OpenMP pool spin-waits between ops; on a machine whose cores are
# busy with other work that multiplies its run time by 3-200x (measured here).
# Passive waiting only ever helps PyTorch in this comparison.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F

D, H, K_RNADE, BATCH, PIX_P, SMAX = 784, 500, 10, 100, 0.13, 100
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
torch.set_grad_enabled(False)


# ---- threads: torch's own pool and the OpenBLAS it calls --------------------
def _openblas_libs():
    libs, seen = [], set()
    with open("/proc/self/maps") as f:
        for path in re.findall(r"(/\S*(?:openblas|libblas)\S*\.so[.\d]*)", f.read()):
            if path in seen:
                continue
            seen.add(path)
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_set_num_threads, lib.openblas_get_num_threads  # noqa: B018 (probe)
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.openblas_get_corename.restype = ctypes.c_char_p
                libs.append((path, lib))
            except (OSError, AttributeError):
                pass
    return libs


torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # make sure the BLAS is loaded
BLAS = _openblas_libs()


def set_threads(t):
    if t > 0:
        torch.set_num_threads(t)
        for _, lib in BLAS:
            lib.openblas_set_num_threads(t)


def info():
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": [],
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    for path, lib in BLAS:
        out["blas"].append({"path": path, "config": lib.openblas_get_config().decode(),
                            "corename": lib.openblas_get_corename().decode(),
                            "threads": lib.openblas_get_num_threads()})
    return out


def timeit(fn, warm, reps):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


# ---- data and masks (ar.h's rule: seed-independent semantics) -------------------
def data(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    if model == "rnade":
        return torch.randn(n, D, generator=g)
    return (torch.rand(n, D, generator=g) < PIX_P).float()


def made_masks(pos, labels, direct):
    """pos: 1-based place of each dim [D]; labels: per hidden layer [H_l].
    hidden: m_l(k) >= m_{l-1}(j); output d: pos(d) > m_L(k); direct: pos(d) > pos(j)."""
    masks, prev = [], pos
    for lab in labels:
        masks.append((lab[:, None] >= prev[None, :]).astype(np.float32))
        prev = lab
    mv = (pos[:, None] > prev[None, :]).astype(np.float32) if labels else None
    ma = (pos[:, None] > pos[None, :]).astype(np.float32) if direct else None
    return masks, mv, ma


def xavier(fan_out, fan_in, g):
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * a


class Made(torch.nn.Module):
    def __init__(self, hidden, direct, seed=1):
        super().__init__()
        rs = np.random.RandomState(seed)
        self.order = np.arange(D)
        pos = np.arange(1, D + 1)
        labels, lo = [], 1
        for h in hidden:
            lab = rs.randint(lo, D, size=h)
            labels.append(lab)
            lo = int(lab.min())
        masks, mv, ma = made_masks(pos, labels, direct)
        g = torch.Generator().manual_seed(seed)
        self.W, self.b, self.M = torch.nn.ParameterList(), torch.nn.ParameterList(), []
        prev = D
        for h, mk in zip(hidden, masks):
            self.W.append(torch.nn.Parameter(xavier(h, prev, g)))
            self.b.append(torch.nn.Parameter(torch.zeros(h)))
            self.M.append(torch.from_numpy(mk))
            prev = h
        self.V = torch.nn.Parameter(xavier(D, prev, g)) if hidden else None
        self.MV = torch.from_numpy(mv) if hidden else None
        self.c = torch.nn.Parameter(torch.zeros(D))
        self.A = torch.nn.Parameter(torch.empty(D, D).uniform_(-0.01, 0.01, generator=g) if hidden
                                    else torch.zeros(D, D)) if direct else None
        self.MA = torch.from_numpy(ma) if direct else None

    def logits(self, x):
        h = x
        for W, b, M in zip(self.W, self.b, self.M):
            h = F.relu(F.linear(h, W * M, b))
        if self.V is None:
            return F.linear(x, self.A * self.MA, self.c)
        out = F.linear(h, self.V * self.MV, self.c)
        return out + F.linear(x, self.A * self.MA) if self.A is not None else out

    def nll(self, x):
        return F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(1)

    def sample_naive(self, B, places=D, pp=None):
        """D full forward passes, one place drawn after each."""
        x = torch.zeros(B, D)
        t0 = time.perf_counter()
        for t in range(places):
            d = int(self.order[t])
            x[:, d] = torch.bernoulli(torch.sigmoid(self.logits(x)[:, d]))
            if pp is not None:
                t1 = time.perf_counter()
                pp[t], t0 = t1 - t0, t1
        return x

    def sample_fvsbn(self, B, pp=None):
        """FVSBN, place by place: logit_d = c_d + A_d . x (O(D) per place)."""
        Am = self.A * self.MA
        x = torch.zeros(B, D)
        t0 = time.perf_counter()
        for t in range(D):
            d = int(self.order[t])
            x[:, d] = torch.bernoulli(torch.sigmoid(torch.mv(x, Am[d]) + self.c[d]))
            if pp is not None:
                t1 = time.perf_counter()
                pp[t], t0 = t1 - t0, t1
        return x


def head_nll(o, x, K):
    """-log p(x | o) elementwise; o [..., P], x [...]."""
    if K == 0:
        return F.binary_cross_entropy_with_logits(o[..., 0], x, reduction="none")
    z, mu, ls = o.split(K, -1)
    e = (x.unsqueeze(-1) - mu) * torch.exp(-ls)
    return -(torch.logsumexp(z - ls - 0.5 * e * e, -1) - LOG_SQRT_2PI - torch.logsumexp(z, -1))


class Nade(torch.nn.Module):
    """W [D,H], c [H], V [D,P,H], b [D,P]; P = 1 (Bernoulli) or 3K (RNADE)."""

    def __init__(self, K, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.K, P = K, (3 * K if K else 1)
        self.W = torch.nn.Parameter(torch.empty(D, H).uniform_(-0.05, 0.05, generator=g))
        self.c = torch.nn.Parameter(torch.zeros(H))
        self.V = torch.nn.Parameter(torch.empty(D, P, H).uniform_(-0.05, 0.05, generator=g))
        b = torch.zeros(D, P)
        if K:
            b[:, K:2 * K] = torch.linspace(-1, 1, K) if K > 1 else 0.0
        self.b = torch.nn.Parameter(b)

    def nll_loop(self, x):
        N = x.shape[0]
        a, outs = self.c.expand(N, H), []
        # unbind once: indexing W[d] inside the loop would give every place a
        # backward that writes a zero-filled gradient of the whole tensor
        Ws, Vs, bs, xs = self.W.unbind(0), self.V.unbind(0), self.b.unbind(0), x.unbind(1)
        for d in range(D):
            outs.append(torch.addmm(bs[d], torch.sigmoid(a), Vs[d].t()))
            a = torch.addr(a, xs[d], Ws[d])
        return head_nll(torch.stack(outs, 0), x.t(), self.K).sum(0)

    def nll_cumsum(self, x):
        xw = x.t().unsqueeze(2) * self.W.unsqueeze(1)  # [D,N,H]
        h = torch.sigmoid(self.c + torch.cumsum(xw, 0) - xw)
        o = torch.baddbmm(self.b.unsqueeze(1), h, self.V.transpose(1, 2))  # [D,N,P]
        return head_nll(o, x.t(), self.K).sum(0)

    def sample(self, B, pp=None):
        K, x = self.K, torch.zeros(B, D)
        a = self.c.expand(B, H).clone()
        t0 = time.perf_counter()
        for d in range(D):
            o = torch.addmm(self.b[d], torch.sigmoid(a), self.V[d].t())
            if K == 0:
                xd = torch.bernoulli(torch.sigmoid(o[:, 0]))
            else:
                z, mu, ls = o.split(K, -1)
                k = torch.multinomial(torch.softmax(z, -1), 1)
                xd = (mu.gather(1, k) + torch.exp(ls.gather(1, k)) * torch.randn(B, 1))[:, 0]
            x[:, d] = xd
            a.addr_(xd, self.W[d])
            if pp is not None:
                t1 = time.perf_counter()
                pp[d], t0 = t1 - t0, t1
        return x


# ---- the commands ---------------------------------------------------------------
MODELS = {}


def get_model(name):
    if name not in MODELS:
        torch.manual_seed(1)
        m = {"made": lambda: Made([500], 0), "fvsbn": lambda: Made([], 1),
             "nade": lambda: Nade(0), "rnade": lambda: Nade(K_RNADE)}[name]()
        MODELS[name] = (m, torch.optim.Adam(m.parameters(), 1e-3), data(name, BATCH, 10))
    return MODELS[name]


_MLP = {}


def mlp():
    if not _MLP:
        g = torch.Generator().manual_seed(4)
        ps = [torch.nn.Parameter(xavier(500, 784, g)), torch.nn.Parameter(torch.zeros(500)),
              torch.nn.Parameter(xavier(784, 500, g)), torch.nn.Parameter(torch.zeros(784))]
        _MLP.update(ps=ps, opt=torch.optim.Adam(ps, 1e-3), x=data("made", BATCH, 4))
    return _MLP


def mlp_step():
    m = mlp()
    W1, b1, W2, b2 = m["ps"]
    with torch.enable_grad():
        z = F.linear(torch.sigmoid(F.linear(m["x"], W1, b1)), W2, b2)
        loss = F.binary_cross_entropy_with_logits(z, m["x"])
        m["opt"].zero_grad()
        loss.backward()
    m["opt"].step()


def train_fn(name, algo):
    m, opt, x = get_model(name)
    nll = m.nll if isinstance(m, Made) else (m.nll_cumsum if algo == "cumsum" else m.nll_loop)
    state = {}

    def step():
        with torch.enable_grad():
            loss = nll(x).mean()
            opt.zero_grad()
            loss.backward()
        opt.step()
        state["loss"] = float(loss)
    return step, state


def sample_fn(name, B, places, pp=None):
    m = get_model(name)[0]
    if name == "made":
        return lambda: m.sample_naive(B, places, pp)
    if name == "fvsbn":
        return lambda: m.sample_fvsbn(B, pp)
    return lambda: m.sample(B, pp)


# ---- Transformer: the MNIST shape of bench.c (V 2, T 784, d 64, 4 heads, 2 layers, learned positions) ----
class Tfm(torch.nn.Module):
    """Pre-LayerNorm decoder as a PyTorch user writes it: fused
    scaled_dot_product_attention for training where torch has it (else a
    masked softmax), a hand-kept KV cache for decoding. As in ar.h 0.5 the
    V data tokens are 0..V-1 and the start token is id V: the embedding has
    V + 1 rows, the head V outputs."""

    def __init__(self, V=2, T=D, d=64, heads=4, layers=2, ffn=256, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        nn = torch.nn
        self.V, self.d, self.h = V, d, heads
        self.tok, self.pos = nn.Embedding(V + 1, d), nn.Parameter(0.02 * torch.randn(T, d))
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(ln1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d), o=nn.Linear(d, d),
                                                  ln2=nn.LayerNorm(d), fc1=nn.Linear(d, ffn), fc2=nn.Linear(ffn, d))))
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, V)
        self.causal = torch.ones(T, T, dtype=torch.bool).triu(1)

    def forward(self, idx):
        B, n = idx.shape
        d, H = self.d, self.h
        x = self.tok(idx) + self.pos[:n]
        for b in self.blocks:
            q, k, v = b["qkv"](b["ln1"](x)).split(d, -1)
            q, k, v = (t.view(B, n, H, d // H).transpose(1, 2) for t in (q, k, v))
            if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0: fused
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                sc = (q @ k.transpose(2, 3)) / math.sqrt(d // H)
                a = torch.softmax(sc.masked_fill(self.causal[:n, :n], float("-inf")), -1) @ v
            x = x + b["o"](a.transpose(1, 2).reshape(B, n, d))
            x = x + b["fc2"](F.gelu(b["fc1"](b["ln2"](x))))
        return self.head(self.lnf(x))

    def step(self, tok, K, Vc, t):
        """Feeds tok [B] at position t; K, Vc: per layer [B,H,T,dh] caches."""
        d, H = self.d, self.h
        B = tok.shape[0]
        x = self.tok(tok) + self.pos[t]
        for l, b in enumerate(self.blocks):
            q, k, v = b["qkv"](b["ln1"](x)).split(d, -1)
            q, k, v = (z.view(B, H, 1, d // H) for z in (q, k, v))
            K[l][:, :, t:t + 1], Vc[l][:, :, t:t + 1] = k, v
            att = torch.softmax(q @ K[l][:, :, :t + 1].transpose(2, 3) / math.sqrt(d // H), -1)
            x = x + b["o"]((att @ Vc[l][:, :, :t + 1]).reshape(B, d))
            x = x + b["fc2"](F.gelu(b["fc1"](b["ln2"](x))))
        return self.head(self.lnf(x))


_tfm = {}


def tfm_fn(algo, B, n):
    if "m" not in _tfm:
        _tfm["m"] = Tfm()
        _tfm["opt"] = torch.optim.Adam(_tfm["m"].parameters(), 1e-3)
    m, opt = _tfm["m"], _tfm["opt"]
    g = torch.Generator().manual_seed(5)
    if algo == "train":
        tg = (torch.rand(B, D, generator=g) < PIX_P).long()
        inp = torch.cat([torch.full((B, 1), m.V, dtype=torch.long), tg[:, :-1]], 1)  # start token V

        def step():
            with torch.enable_grad():
                loss = F.cross_entropy(m(inp).reshape(-1, m.V), tg.reshape(-1), reduction="sum") / B
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return step

    def generate():
        tok = torch.full((B,), m.V, dtype=torch.long)  # the start token
        if algo == "naive":  # the whole prefix again for every token
            seq = tok.view(B, 1)
            for t in range(n):
                p = torch.softmax(m(seq)[:, -1], -1)
                seq = torch.cat([seq, torch.multinomial(p, 1)], 1)
            return
        dh = m.d // m.h
        K = [torch.empty(B, m.h, D, dh) for _ in m.blocks]
        Vc = [torch.empty(B, m.h, D, dh) for _ in m.blocks]
        for t in range(n):
            tok = torch.multinomial(torch.softmax(m.step(tok, K, Vc, t), -1), 1).view(B)
    return generate


# ---- language-model decoding: bench.c's LM (V 32000, d 288, 6 heads, 6 layers, ffn 768, T 256, rotary) ----
LM_T = 256


class Lm(torch.nn.Module):
    """bench.c's language model with random weights (the rows time steps):
    a token embedding of V + 1 rows (id V: the start token), rotary
    positions as ar.h applies them (the pairs (2i, 2i+1) of each head's q
    and k rotated by pos * 10000^(-2i/dh)), pre-LayerNorm blocks with a
    fused qkv and an exact-GELU MLP, a final LayerNorm and the head; one
    step at a time through a preallocated KV cache."""

    def __init__(self, V=32000, d=288, heads=6, layers=6, ffn=768, T=LM_T, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        nn = torch.nn
        self.V, self.d, self.h = V, d, heads
        self.tok = nn.Embedding(V + 1, d)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(ln1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d), o=nn.Linear(d, d),
                                                  ln2=nn.LayerNorm(d), fc1=nn.Linear(d, ffn), fc2=nn.Linear(ffn, d))))
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, V)
        dh = d // heads
        ang = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (-2.0 * torch.arange(dh // 2) / dh)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()  # [T, dh/2]

    def read(self):
        """Floats a step reads: every parameter but the token table (B rows of it)."""
        return sum(p.numel() for p in self.parameters()) - self.tok.weight.numel()

    def rope(self, x, t):
        """x [B,H,dh] rotated for position t."""
        x0, x1, c, s = x[..., 0::2], x[..., 1::2], self.cos[t], self.sin[t]
        return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), -1).flatten(-2)

    def step(self, tok, K, Vc, t):
        """Feeds tok [B] at position t; K, Vc: per layer [B,H,T,dh] caches."""
        d, H = self.d, self.h
        B = tok.shape[0]
        x = self.tok(tok)
        for l, b in enumerate(self.blocks):
            q, k, v = b["qkv"](b["ln1"](x)).view(B, 3, H, d // H).unbind(1)
            K[l][:, :, t], Vc[l][:, :, t] = self.rope(k, t), v
            sc = self.rope(q, t).unsqueeze(2) @ K[l][:, :, :t + 1].transpose(2, 3)
            att = torch.softmax(sc / math.sqrt(d // H), -1)
            x = x + b["o"]((att @ Vc[l][:, :, :t + 1]).reshape(B, d))
            x = x + b["fc2"](F.gelu(b["fc1"](b["ln2"](x))))
        return self.head(self.lnf(x))


_lm = {}


def lm_model():
    if "m" not in _lm:
        _lm["m"] = Lm()
    return _lm["m"]


def lm_fn(B, n):
    """Decodes n positions of B sequences from the start token, each step fed
    the argmax of the one before, as bench.c does."""
    m = lm_model()
    if _lm.get("B") != B:  # one cache, kept for the last batch size (as bench.c)
        _lm["K"] = _lm["Vc"] = None  # the old cache goes before the new one is made
        dh = m.d // m.h
        _lm.update(B=B, K=[torch.empty(B, m.h, LM_T, dh) for _ in m.blocks],
                   Vc=[torch.empty(B, m.h, LM_T, dh) for _ in m.blocks])
    K, Vc = _lm["K"], _lm["Vc"]

    def generate():
        tok = torch.full((B,), m.V, dtype=torch.long)
        for t in range(n):
            tok = m.step(tok, K, Vc, t).argmax(-1)
    return generate


# ---- convolutional models: the trainer's shapes of bench.c (28 x 28 binary) ----
class Cnn(torch.nn.Module):
    """PixelCNN (F 64, 7x7 mask A + 5 residual 3x3 mask B), Gated PixelCNN
    (F 32, 1 + 6 layers: vertical (k/2+1) x k, horizontal 1 x (k/2+1), the
    link one row down) and WaveNet (F 32, kernel 2, 1 + 20 gated blocks,
    dilations 1..512 twice, skip sum), as ar.h defines them, written the
    way a PyTorch user does: NCHW, padding and masks multiplied into the
    weights in every forward pass."""

    def __init__(self, kind, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        nn = torch.nn
        self.kind = kind
        F_ = 64 if kind == "pixelcnn" else 32
        self.L = 5 if kind == "pixelcnn" else 6 if kind == "gated" else 20
        self.convs = nn.ModuleList()
        if kind == "pixelcnn":
            for l in range(self.L + 1):
                k = 7 if l == 0 else 3
                c = nn.Conv2d(1 if l == 0 else F_, F_, k, padding=k // 2)
                m = torch.ones(1, 1, k, k)
                m[:, :, k // 2, k // 2 + (l > 0):] = 0
                m[:, :, k // 2 + 1:] = 0
                c.register_buffer("mask", m)
                self.convs.append(c)
        elif kind == "gated":
            self.v, self.h, self.link, self.res = (nn.ModuleList() for _ in range(4))
            for l in range(self.L + 1):
                k, ci = (7 if l == 0 else 3), (1 if l == 0 else F_)
                self.v.append(nn.Conv2d(ci, 2 * F_, (k // 2 + 1, k)))
                self.h.append(nn.Conv2d(ci, 2 * F_, (1, k // 2 + (l > 0))))  # layer 0: x-k/2 .. x-1
                self.link.append(nn.Conv2d(2 * F_, 2 * F_, 1))
                self.res.append(nn.Conv2d(F_, F_, 1) if l else nn.Identity())
        else:
            self.first = nn.Conv1d(1, F_, 2)
            self.dil = [1 << (l % 10) for l in range(self.L)]
            self.wconv = nn.ModuleList(nn.Conv1d(F_, 2 * F_, 2, dilation=d) for d in self.dil)
            self.res = nn.ModuleList(nn.Conv1d(F_, F_, 1) for _ in self.dil)
            self.skip = nn.ModuleList(nn.Conv1d(F_, F_, 1) for _ in self.dil)
        conv = nn.Conv1d if kind == "wavenet" else nn.Conv2d
        self.head1, self.head2 = conv(F_, F_, 1), conv(F_, 1, 1)

    @staticmethod
    def gate(a):
        f, g = a.chunk(2, 1)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, x):  # x [B, 784] -> logits [B, 784]
        B = x.shape[0]
        if self.kind == "pixelcnn":
            h = x.view(B, 1, 28, 28)
            for l, c in enumerate(self.convs):
                y = F.relu(F.conv2d(h, c.weight * c.mask, c.bias, padding=c.padding))
                h = y if l == 0 else h + y
        elif self.kind == "gated":
            v = h = x.view(B, 1, 28, 28)
            for l in range(self.L + 1):
                k = 7 if l == 0 else 3
                vp = self.v[l](F.pad(v, (k // 2, k // 2, k // 2, 0)))
                hp = self.h[l](F.pad(h, (k // 2, -1 if l == 0 else 0, 0, 0)))
                z = self.gate(hp + self.link[l](F.pad(vp, (0, 0, 1, -1))))
                h = z if l == 0 else h + self.res[l](z)
                if l < self.L:  # the last layer's would go unused
                    v = self.gate(vp)
        else:
            h = self.first(F.pad(x.view(B, 1, D), (2, -1)))
            skip = 0
            for l, d in enumerate(self.dil):
                z = self.gate(self.wconv[l](F.pad(h, (d, 0))))
                h = h + self.res[l](z)
                skip = skip + self.skip[l](z)
            h = skip
        return self.head2(F.relu(self.head1(F.relu(h)))).reshape(B, D)

    def load_ar(self, w):
        """ar.h's weights [Co, kh, kw, Ci] (channels last) into this module."""
        def put(mod, name, taps=None):
            t = w[f"{name}.W"].permute(0, 3, 1, 2)
            t = t[..., :taps] if taps else t
            mod.weight.data = (t[:, :, 0] if mod.weight.dim() == 3 else t).to(mod.weight.dtype).contiguous()
            mod.bias.data = w[f"{name}.b"].to(mod.bias.dtype)
        if self.kind == "pixelcnn":
            for l, c in enumerate(self.convs):
                put(c, f"l{l}")
        elif self.kind == "gated":
            for l in range(self.L + 1):
                put(self.v[l], f"l{l}.v")
                put(self.h[l], f"l{l}.h", 3 if l == 0 else 2)
                put(self.link[l], f"l{l}.link")
                if l:
                    put(self.res[l], f"l{l}.res")
        else:
            put(self.first, "l0")
            for l in range(self.L):
                put(self.wconv[l], f"l{l + 1}")
                put(self.res[l], f"l{l + 1}.res")
                put(self.skip[l], f"l{l + 1}.skip")
        put(self.head1, "head1")
        put(self.head2, "head2")


_cnn = {}


def cnn_fn(kind, algo, B, places):
    if kind not in _cnn:
        m = Cnn(kind)
        _cnn[kind] = (m, torch.optim.Adam(m.parameters(), 1e-3))
    m, opt = _cnn[kind]
    g = torch.Generator().manual_seed(11)
    if algo == "train":
        def step():
            x = (torch.rand(B, D, generator=g) < PIX_P).float()
            with torch.enable_grad():
                loss = F.binary_cross_entropy_with_logits(m(x), x, reduction="sum") / B
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return step

    def sample():  # naive: a whole forward pass per pixel
        x = torch.zeros(B, D)
        for p in range(places):
            x[:, p] = torch.bernoulli(torch.sigmoid(m(x)[:, p]), generator=g)
    return sample



def bins28(a):
    """Means over bins of 28 places (one image row)."""
    return [float(np.mean(a[i * 28:(i + 1) * 28])) for i in range(len(a) // 28)]


def command(line):
    f = line.split()
    task = f[0]
    if task == "info":
        return info()
    if task == "xcheck":
        return {"xcheck": xcheck(f[1])}
    model, algo, batch, threads, reps, warm = f[1], f[2], int(f[3]), int(f[4]), int(f[5]), int(f[6])
    places = int(f[7]) if len(f) > 7 else D
    set_threads(threads)
    if task == "sgemm":
        a, b = torch.rand(batch, batch) - 0.5, torch.rand(batch, batch) - 0.5
        c = torch.empty(batch, batch)
        return {"gflops": 2.0 * batch ** 3 / timeit(lambda: torch.mm(a, b, out=c), warm, reps) / 1e9}
    if task == "bw":
        a = torch.rand(64 << 20)
        b = torch.zeros(64 << 20)
        return {"gbs": 2.0 * a.numel() * 4 / timeit(lambda: b.copy_(a), warm, reps) / 1e9}
    if task == "rbw":  # torch.sum over as many float32 values as bench.c sums
        n = (1 << 28) if algo == "large" else lm_model().read()
        a = torch.ones(n)
        return {"gbs": 4.0 * n / timeit(lambda: torch.sum(a), warm, reps) / 1e9, "bytes": 4 * n,
                "threads": torch.get_num_threads()}
    if task == "lm":
        return {"sec": timeit(lm_fn(batch, places), warm, reps), "tokens": places, "read": lm_model().read()}
    if task == "mlp":
        return {"sec": timeit(mlp_step, warm, reps)}
    if task == "train":
        if algo == "best" and name_is_nade(model):
            res = {a: timeit(train_fn(model, a)[0], warm, reps) for a in ("loop", "cumsum")}
            best = min(res, key=res.get)
            return {"sec": res[best], "algo": best, "all": res}
        step, st = train_fn(model, algo)
        sec = timeit(step, warm, reps)
        return {"sec": sec, "loss": st.get("loss"), "algo": algo if name_is_nade(model) else "masked-linear"}
    if task == "sample":
        fn = sample_fn(model, batch, places)
        return {"sec": timeit(fn, warm, reps) * D / places, "places": places,
                "algo": "naive" if model == "made" else "per-place"}
    if task == "tfm":
        res = {"sec": timeit(tfm_fn(algo, batch, places), warm, reps), "tokens": places}
        if algo == "train":  # which attention this torch has
            res["algo"] = "fused SDPA" if hasattr(F, "scaled_dot_product_attention") else "masked softmax (no SDPA)"
        return res
    if task == "cnn":
        sec = timeit(cnn_fn(model, algo, batch, places), warm, reps)
        return {"sec": sec if algo == "train" else sec * D / places, "places": places}
    if task == "perpos":
        n = places if model == "made" else D
        rows = []
        for r in range(warm + reps):
            pp = np.zeros(D)
            sample_fn(model, batch, n, pp)()
            if r >= warm:
                rows.append(pp)
        med = np.median(np.array(rows), 0)
        return {"bin": 28, "places": n // 28 * 28, "sec": bins28(med[:n])}
    return {"error": "bad command"}


def name_is_nade(name):
    return name in ("nade", "rnade")


# ---- cross-check ------------------------------------------------------------------
def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = hdr.pop("__metadata__", {})
    out = {}
    for name, t in hdr.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} has dtype {t['dtype']}")
        b, e = t["data_offsets"]
        arr = np.frombuffer(buf, dtype="<f4", count=(e - b) // 4, offset=8 + n + b)
        out[name] = torch.from_numpy(arr.astype(np.float64).reshape(t["shape"]))
    return out, meta


def _ints(meta, key):
    return [int(v) for v in meta.get(key, "").split(",") if v]


def xcheck_one(ckpt, ref_path):
    """Rebuilds the model from the checkpoint alone (ar.h 0.5: the
    configuration, MADE's orderings and connectivity labels are in its
    __metadata__) and returns the largest relative error of log p(x)."""
    w, meta = load_safetensors(ckpt)
    ref, _ = load_safetensors(ref_path)
    x, want = ref["x"], ref["logp"]
    kind = meta["ar.model"]
    Dm = int(meta["rows"]) * int(meta["cols"])
    note = ""
    if kind in ("pixelcnn", "gated", "wavenet"):
        m = Cnn(kind).double()
        m.load_ar(w)
        z = m(x)
        got = -head_nll(z.unsqueeze(-1), x, 0).sum(1)
        note = "weights moved from [Co,kh,kw,Ci] to NCHW convolutions"
    elif kind in ("made", "fvsbn"):
        hidden, direct = _ints(meta, "hidden"), int(meta["direct"])
        if int(meta["n_masks"]) != 1:
            return None, "one mask set expected"
        order = np.array(_ints(meta, "orders")[:Dm])
        pos = np.empty(Dm, dtype=int)
        pos[order] = np.arange(1, Dm + 1)  # 1-based place of each dimension
        flat, labels = _ints(meta, "labels"), []
        for h in hidden:
            labels.append(np.array(flat[:h]))
            flat = flat[h:]
        masks, mv, ma = made_masks(pos, labels, direct)
        note = "masks built here from the checkpoint's labels by the paper's rule"
        h = x
        for l in range(len(hidden)):
            h = F.relu(F.linear(h, w[f"W{l}"] * torch.from_numpy(masks[l]).double(), w[f"b{l}"]))
        if hidden:
            z = F.linear(h, w["V"] * torch.from_numpy(mv).double(), w["c"])
            if direct:
                z = z + F.linear(x, w["A"] * torch.from_numpy(ma).double())
        else:
            z = F.linear(x, w["A"] * torch.from_numpy(ma).double(), w["c"])
        got = -head_nll(z.unsqueeze(-1), x, 0).sum(1)
    elif kind in ("nade", "rnade"):
        K = int(meta["K"]) if kind == "rnade" else 0
        if int(meta.get("transform", "0")) != 0:
            return None, "RNADE's logit transform is not rebuilt here (the bench's RNADE has none)"
        order = _ints(meta, "order") or list(range(Dm))
        W, c, V, b = w["W"], w["c"], w["V"], w["b"]
        P = 3 * K if K else 1
        V, b = V.reshape(Dm, P, -1), b.reshape(Dm, P)
        a, got = c.expand(x.shape[0], -1).clone(), torch.zeros(x.shape[0], dtype=torch.float64)
        for d in order:
            o = torch.sigmoid(a) @ V[d].t() + b[d]
            got -= head_nll(o, x[:, d], K)
            a += x[:, d:d + 1] * W[d]
    else:
        return None, f"no PyTorch rebuild of {kind}"
    rel = float(((got - want).abs() / want.abs().clamp_min(1e-6)).max())
    return rel, note


def xcheck(dirname):
    with open(f"{dirname}/index.json") as f:
        listing = json.load(f)
    out = []
    for c in listing:
        try:
            rel, note = xcheck_one(os.path.join(dirname, os.path.basename(c["checkpoint"])),
                                   os.path.join(dirname, os.path.basename(c["ref"])))
        except Exception as e:  # a malformed file is a failed check, not a crash
            rel, note = None, f"{type(e).__name__}: {e}"
        out.append({"name": c["name"], "model": c["model"], "max_rel_err": rel, "note": note,
                    "pass": rel is not None and rel <= 1e-4})
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        for line in sys.stdin:
            line = line.strip()
            if not line or line == "quit":
                break
            try:
                res = command(line)
            except Exception as e:  # report, keep serving
                res = {"error": f"{type(e).__name__}: {e}"}
            print(json.dumps(res), flush=True)
    elif len(sys.argv) == 3 and sys.argv[1] == "--xcheck":
        print(json.dumps(xcheck(sys.argv[2])))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
