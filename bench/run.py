#!/usr/bin/python3
"""ar.h benchmark: the C side (bench.c) and the PyTorch peer (peer.py) in one run.

    /usr/bin/python3 bench/run.py [--quick] [--bench .build/bench] [--out .build] [--spec DIR]
                                  [--only SECTION[,SECTION..]]

Both sides run as servers; every measurement is taken on one side and then
at once on the other (the order flips every round), so drift in the speed
of a shared machine hits both. Each figure is the median over rounds of a
median over timed repeats after warm-up; a ratio is the median over rounds
of the ratio within a round. Prints one table and writes <out>/bench.json
and <out>/bench-per-place.png (time per sampled place against the place).
Without PyTorch the C side runs alone and the table says so.

The speculative-sampling section reads the checkpoints of make spec-models
from --spec DIR (default <out>/spec) and has no PyTorch peer; without them
it is skipped with a note. --only measures some sections alone: machine,
train, sample, lm, spec, places (time per place), xcheck (the PyTorch
cross-check); train, sample and lm bring the machine limits they are read
against. It writes <out>/bench-only-<sections>.json, not bench.json, and
starts the PyTorch peer only if a chosen section has a PyTorch column.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["made", "fvsbn", "nade", "rnade"]
TITLE = {"made": "MADE 784-500-784", "fvsbn": "FVSBN 784", "nade": "NADE H=500", "rnade": "RNADE H=500 K=10"}
D = 784
H, K = 500, 10
# Flops of the products in one training example (the input needs no
# gradient: MADE 2 forward + 3 backward products of D x H, FVSBN 1 + 1 of
# D x D, NADE per place 2 + 4 vector products of H, RNADE the same with 3K
# outputs) and weights per model, for the fraction-of-the-machine notes:
# achieved GFLOP/s against peak sgemm for training, weight bytes streamed
# per batch-1 sample against the copy bandwidth.
TRAIN_FLOPS = {"made": 5 * 2 * D * H, "fvsbn": 2 * 2 * D * D,
               "nade": 6 * 2 * H * D, "rnade": (9 * K + 3) * 2 * H * D}
WEIGHTS = {"made": 2 * D * H + H + D, "fvsbn": D * D + D, "nade": 2 * D * H + H + D,
           "rnade": D * H + H + 3 * K * D * H + 3 * K * D}
# The language model of the decoding rows (bench.c's lm_ctx: V 32000, d 288,
# 6 heads, 6 layers, ffn 768, rotary). bench.c answers with the floats a step
# reads and the weight-matrix elements a token multiplies; the targets:
# batch 1 streams its weights at >= 80% (1 thread) / 75% (more) of the read
# bandwidth of a large buffer, batch 32 multiplies at >= 50% of peak sgemm.
LM_T = 256
LM_TITLE = "LM d288 6h 6L ffn768 V32000"
LM_READ_GOAL = {1: 0.80}  # else 0.75
LM_GEMM_GOAL = {32: 0.50}
SECTIONS = {"machine": "machine limits", "train": "training throughput", "sample": "sampling",
            "lm": f"language-model decoding: random weights, rotary positions, T {LM_T}, from an empty cache, each "
                  "step fed the last argmax"}


class Server:
    """A process answering one JSON line per command line."""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                  env=env)

    def ask(self, cmd, errors=False):
        """The answer to cmd; an error answer raises, or with errors=True is returned."""
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.p.args[0]} died on: {cmd}")
        out = json.loads(line)
        if "error" in out and not errors:
            raise RuntimeError(f"{self.p.args[0]}: {cmd}: {out['error']}")
        return out

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.p.wait()


def torch_available():
    try:
        r = subprocess.run([sys.executable, "-c", "import torch, numpy"], capture_output=True, timeout=120)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# ---- what is measured --------------------------------------------------------------
class Row:
    """One measurement, on ar.h (c) and/or PyTorch (t). value(res, side) turns a
    server answer into the figure shown (higher is better unless lower=True)."""

    def __init__(self, section, label, threads, unit, c=None, t=None, value=None, note="", key=None):
        self.section, self.label, self.threads, self.unit = section, label, threads, unit
        self.cmd = {"c": c, "t": t}
        self.value = value
        self.note = note
        self.key = key or label
        self.vals = {"c": [], "t": []}
        self.raw = {"c": [], "t": []}
        self.ratios = []


def per_sec(n):
    return lambda r: n / r["sec"]


def plan(quick, T):
    """Rows and the commands that measure them; reps and warm-ups by cost."""
    rows = []
    q = quick
    add = rows.append
    # machine limits
    for th in (1, T):
        add(Row("machine", "peak sgemm 1024^3 (cblas_sgemm | torch.mm)", th, "GFLOP/s",
                c=f"sgemm - - 1024 {th} {3 if q else 7} 1", t=f"sgemm - - 1024 {th} {3 if q else 7} 1",
                value=lambda r: r["gflops"], key=f"sgemm{th}"))
    add(Row("machine", "memory bandwidth, copy 256 MiB r+w (memcpy | copy_)", 1, "GB/s",
            c=f"bw - - 0 1 {3 if q else 5} 1", t=f"bw - - 0 1 {3 if q else 5} 1", value=lambda r: r["gbs"], key="bw"))
    # read bandwidth: where a batch-1 decoder's weights come from: DRAM (1 GiB,
    # far beyond any cache) or, at the LM's weight size, wherever they fit (a sum
    # of that size takes milliseconds: more repeats)
    for size, what, reps in (("large", "1 GiB", 3 if q else 5), ("lm", "the LM's weight size", 11 if q else 21)):
        for th in (1, T):
            cmd = f"rbw - {size} 0 {th} {reps} {1 if size == 'large' else 2}"
            add(Row("machine", f"read bandwidth, sum of {what} (loop | torch.sum)", th, "GB/s", c=cmd, t=cmd,
                    value=lambda r: r["gbs"], key=f"rbw_{size}{th}"))
    for th in ((T,) if q else (1, T)):
        r, w = (7, 2) if q else (21, 3)
        add(Row("machine", "MLP 784-500-784 B=100: raw sgemm x5 (the floor)", th, "ms", c=f"mlp - raw 100 {th} {r} {w}",
                value=lambda res: 1e3 * res["sec"], key=f"mlp_raw{th}"))
        add(Row("machine", "MLP 784-500-784 B=100: step fwd+bwd+Adam", th, "ms", c=f"mlp - step 100 {th} {r} {w}",
                t=f"mlp - step 100 {th} {r} {w}", value=lambda res: 1e3 * res["sec"], key=f"mlp_step{th}"))
    # training
    for th in ((T,) if q else (1, T)):
        for m in MODELS:
            if m in ("nade", "rnade"):  # torch: the faster of its two formulations (loop only when quick)
                cr, tr, algo = (3 if q else 7), (2 if q else 3), ("loop" if q else "best")
            else:
                cr, tr, algo = (5 if q else 11), (5 if q else 11), "-"
            add(Row("train", f"{TITLE[m]}: train B=100 fwd+bwd+Adam", th, "ex/s", c=f"train {m} - 100 {th} {cr} 1",
                    t=f"train {m} {algo} 100 {th} {tr} 1", value=per_sec(100), key=f"train_{m}_{th}"))
    # the Transformer (torch: fused scaled_dot_product_attention from 2.0, else a masked softmax)
    add(Row("train", "Transformer d64 4h 2L: train B=16 x 784 tokens", T, "tokens/s",
            c=f"tfm - train 16 {T} {2 if q else 5} 1 784", t=f"tfm - train 16 {T} {2 if q else 5} 1 784",
            value=lambda res: 16 * 784 / res["sec"], key="train_tfm"))
    # convolutional models, the trainer's shapes (torch: NCHW conv2d/conv1d, masks multiplied in)
    for k in CNNS:
        cmd = f"cnn {k} train 32 {T} {2 if q else 5} 1"
        add(Row("train", f"{CNN_TITLE[k]}: train B=32 fwd+bwd+Adam", T, "images/s", c=cmd, t=cmd,
                value=per_sec(32), key=f"train_{k}"))
    # sampling
    places = 112 if q else D
    for m in MODELS:
        for B in (1, 100):
            reps = (3 if q else 5) if B == 100 else (5 if q else 11)
            # MADE in PyTorch has no sampler but D full passes: its figure is the naive row's, same round
            tcmd = f"=naive_{m}_{B}" if m == "made" else f"sample {m} fast {B} {T} {reps} 1"
            add(Row("sample", f"{TITLE[m]}: sample B={B}" + (" (torch: D passes)" if m == "made" else ""), T,
                    "samples/s", c=f"sample {m} fast {B} {T} {reps} 1", t=tcmd, value=per_sec(B), key=f"sample_{m}_{B}"))
        for B in (1, 100):
            if m == "made":
                add(Row("sample", f"{TITLE[m]}: naive sample B={B}, D full passes", T, "samples/s",
                        c=f"sample made naive {B} {T} 1 0 {places}", t=f"sample made naive {B} {T} 1 0 {places}",
                        value=per_sec(B), key=f"naive_{m}_{B}",
                        note=f"timed over the first {places} places, x{D // places}" if places < D else ""))
            elif m in ("nade", "rnade"):
                add(Row("sample", f"{TITLE[m]}: naive sample B={B}, O(HD^2)", T, "samples/s",
                        c=f"sample {m} naive {B} {T} {1 if B == 100 or q else 3} {0 if B == 100 else 1}",
                        value=per_sec(B), key=f"naive_{m}_{B}"))
    # Transformer decoding (torch: a hand-kept KV cache, or the prefix again per token)
    n = 112
    for B, algo in ((1, "cache"), (16, "cache"), (1, "naive")):
        cmd = f"tfm - {algo} {B} {T} {1 if algo == 'naive' else (3 if q else 7)} {0 if algo == 'naive' else 1} {n}"
        add(Row("sample", f"Transformer d64 4h 2L: {n} tokens, B={B}, " +
                ("KV cache" if algo == "cache" else "prefix recomputed per token"), T, "tokens/s",
                c=cmd, t=cmd, value=lambda res, B=B: B * res["tokens"] / res["sec"], key=f"tfm_{algo}_{B}"))
    # convolutional models: a whole forward pass per pixel against one pixel per layer
    # (PyTorch has no cached sampler: its cached column is its naive figure, same round)
    for k in CNNS:
        for B in (1, 32):
            add(Row("sample", f"{CNN_TITLE[k]}: sample B={B}, cached (torch: full passes)", T, "images/s",
                    c=f"cnn {k} cache {B} {T} {2 if q else 5} {0 if B > 1 or q else 1}", t=f"=cnn_naive_{k}_{B}",
                    value=per_sec(B), key=f"cnn_cache_{k}_{B}"))
            p = 4 if q else 16
            cmd = f"cnn {k} naive {B} {T} 1 0 {p}"
            add(Row("sample", f"{CNN_TITLE[k]}: sample B={B}, naive (full forward pass per pixel)", T, "images/s",
                    c=cmd, t=cmd, value=per_sec(B), key=f"cnn_naive_{k}_{B}", note=f"timed over {p} pixels, x{D // p}"))
    # language-model decoding from an empty cache, each step fed the last argmax
    # (torch: the same model through a preallocated KV cache); a run of B >= 8
    # takes seconds to a minute: one repeat per round; 1 thread up to B = 32
    # (B = 1 when quick)
    n = 32 if q else LM_T
    for th in (1, T):
        for B in (1, 8, 32, 128):
            if th == 1 and th != T and B > (1 if q else 32):
                continue
            cmd = f"lm - cache {B} {th} {3 if B == 1 else 1} {1 if B == 1 else 0} {n}"
            add(Row("lm", f"{LM_TITLE}: decode B={B}, KV cache", th, "tokens/s", c=cmd, t=cmd,
                    value=lambda res, B=B: B * res["tokens"] / res["sec"], key=f"lm_{B}_{th}",
                    note=f"the first {n} of {LM_T} positions" if n < LM_T else ""))
    return rows


CNNS = ("pixelcnn", "gated", "wavenet")
CNN_TITLE = {"pixelcnn": "PixelCNN F64 7x7+5x3x3", "gated": "Gated PixelCNN F32 1+6 layers",
             "wavenet": "WaveNet F32 1+20 blocks"}


def per_place_plan(quick, T):
    """(curve name, side, command): time per place at batch 1."""
    places = 112 if quick else D
    out = []
    for m in MODELS:
        out.append((f"ar.h {m}", "c", f"perpos {m} fast 1 {T} {5 if quick else 11} 1"))
        out.append((f"torch {m}" + (" (D passes)" if m == "made" else ""), "t",
                    f"perpos {m} naive 1 {T} 1 {0 if quick else 1} {places}" if m == "made"
                    else f"perpos {m} fast 1 {T} 3 1"))
    out.append(("ar.h made naive (D passes)", "c", f"perpos made naive 1 {T} {1 if quick else 3} {0 if quick else 1} {places}"))
    out.append(("ar.h nade naive O(HD^2)", "c", f"perpos nade naive 1 {T} {3 if quick else 5} 0"))
    out.append(("ar.h rnade naive O(HD^2)", "c", f"perpos rnade naive 1 {T} {3 if quick else 5} 0"))
    out.append(("ar.h tfm KV cache", "c", f"tfmpos - cache 1 {T} {3 if quick else 7} 1 {D}"))
    out.append(("ar.h tfm recompute", "c", f"tfmpos - naive 1 {T} 1 0 {112 if quick else 224}"))
    # past T where ar.h decodes on over a sliding window; else the curve stops at T
    out.append((f"ar.h lm {LM_TITLE[3:]}, KV cache", "c", f"lmpos - cache 1 {T} {3 if quick else 5} 1 {2 * LM_T}"))
    return out


# ---- speculative sampling ------------------------------------------------------------
# bench.c's "spec DRAFT - B T r w K" rows: the trained target Transformer of make
# spec-models drawing B MNIST images in one ar_model_sample call, alone (plain KV
# decoding, "none") or with a draft proposing k tokens per round. No PyTorch peer.
# In every round and configuration a plain run comes before and after each draft's
# sweep over k (the sweep's direction flips every round), and each speculative
# figure's speedup is the plain seconds bracketing its sweep over its own, so the
# ratio is taken on the same machine state.
SPEC_DRAFTS = {"tfm": "small Transformer draft", "nade": "NADE draft"}
SPEC_GOAL = 2.0  # the goal: the best draft at B = 1 samples >= 2x faster than plain decoding
SPEC_MAKE = "make spec-models"


def spec_section(c, quick, T, spec_dir):
    """Measures the speculative-sampling rows on the bench server c; returns a dict
    (the bench.json entry; 'skipped' holds why when the checkpoints are missing)."""
    ks = [1, 2, 3, 4, 8] if quick else list(range(1, 9))
    configs = [(1, T)] + ([(1, 1)] if T != 1 else []) + [(8, T)]
    rounds = 2 if quick else 3
    out = {"dir": spec_dir, "ks": ks, "rounds": rounds, "goal_speedup_b1": SPEC_GOAL, "skipped": None,
           "drafts_skipped": {}, "configs": []}
    ask = c.ask
    # one call each first, its figure unused: finds a missing checkpoint (an error
    # answer: the section or that draft is skipped) and warms batch 1 up
    first = ask(f"spec none - 1 {T} 1 0 0", errors=True)
    if "error" in first:
        out["skipped"] = first["error"]
        return out
    out["target_params"] = first["target_params"]
    out["draft_params"] = {}
    drafts = []
    for d in SPEC_DRAFTS:
        r = ask(f"spec {d} - 1 {T} 1 0 1", errors=True)
        if "error" in r:
            out["drafts_skipped"][d] = r["error"]
        else:
            drafts.append(d)
            out["draft_params"][d] = r["draft_params"]
    for B, th in configs:
        if B > 1:  # the first calls at a new batch size grow their scratch: untimed
            ask(f"spec none - {B} {th} 1 0 0")
            for d in drafts:
                ask(f"spec {d} - {B} {th} 1 0 1")
        reps = 1 if B > 1 else (1 if quick else 3)
        cfg = {"B": B, "threads": th, "reps": reps, "plain": {"sec": [], "command": f"spec none - {B} {th} {reps} 0 0"},
               "drafts": {d: {k: {"sec": [], "ratio": [], "proposed": 0, "accepted": 0,
                                  "command": f"spec {d} - {B} {th} {reps} 0 {k}"} for k in ks} for d in drafts}}
        for rnd in range(rounds):
            plain_cmd = cfg["plain"]["command"]
            before = ask(plain_cmd)["sec"]
            cfg["plain"]["sec"].append(before)
            for di, d in enumerate(drafts if rnd % 2 == 0 else drafts[::-1]):
                got = {}
                for k in (ks if (rnd + di) % 2 == 0 else ks[::-1]):
                    res = ask(cfg["drafts"][d][k]["command"])
                    got[k] = res
                after = ask(plain_cmd)["sec"]
                cfg["plain"]["sec"].append(after)
                base = (before * after) ** 0.5  # the plain seconds around this sweep
                for k, res in got.items():
                    row = cfg["drafts"][d][k]
                    row["sec"].append(res["sec"])
                    row["ratio"].append(base / res["sec"])
                    row["proposed"] += res["proposed"]
                    row["accepted"] += res["accepted"]
                before = after
        # figures: tokens/s = B * 784 / median seconds; speedup = median of the rounds' ratios
        cfg["plain"]["tokens_s"] = B * D / statistics.median(cfg["plain"]["sec"])
        for d in drafts:
            for k in ks:
                row = cfg["drafts"][d][k]
                row["tokens_s"] = B * D / statistics.median(row["sec"])
                row["speedup"] = statistics.median(row["ratio"])
                row["accept"] = row["accepted"] / row["proposed"] if row["proposed"] else None
            sp = {k: cfg["drafts"][d][k]["speedup"] for k in ks}
            kbest = max(ks, key=lambda k: sp[k])
            cfg.setdefault("stops_paying", {})[d] = {
                "best_k": kbest, "best_speedup": sp[kbest], "never_pays": sp[kbest] <= 1.0,
                "still_rising": kbest == ks[-1], "pays_up_to_k": max([k for k in ks if sp[k] > 1.0], default=None)}
        if drafts:
            bd, bk = max(((d, k) for d in drafts for k in ks), key=lambda x: cfg["drafts"][x[0]][x[1]]["speedup"])
            cfg["best"] = {"draft": bd, "k": bk, "speedup": cfg["drafts"][bd][bk]["speedup"]}
            if B == 1:
                cfg["best"]["goal_pass"] = cfg["best"]["speedup"] >= SPEC_GOAL
        # keys as strings for JSON
        cfg["drafts"] = {d: {str(k): v for k, v in rows.items()} for d, rows in cfg["drafts"].items()}
        out["configs"].append(cfg)
    return out


def spec_lines(spec, say):
    """The section's lines of the table."""
    say("-- speculative sampling: the trained target Transformer draws B MNIST images (784 binary pixels, "
        "temperature 1) in one ar_model_sample call, alone (plain KV decoding) or with a draft proposing k tokens "
        "per round for it to verify in one pass")
    say("   accept: accepted / proposed tokens; speedup: tokens/s over plain decoding's in the same round (plain runs "
        "bracket each draft's sweep over k); no PyTorch peer")
    if spec["skipped"]:
        say(f"(skipped: {spec['skipped']}; {SPEC_MAKE} trains the checkpoints into {spec['dir']}, about 10 minutes)")
        return
    for d, why in spec["drafts_skipped"].items():
        say(f"({SPEC_DRAFTS[d]} skipped: {why}; {SPEC_MAKE} trains it)")
    tp = spec.get("target_params", 0)
    dp = spec.get("draft_params", {})
    if len(spec["ks"]) < 8:
        say(f"   (quick: k in {', '.join(map(str, spec['ks']))} only)")
    say(f"{'measure':<58} {'thr':>3} {'tokens/s':>10} {'accept':>10} {'':<10} {'speedup':>10}")
    for cfg in spec["configs"]:
        B, th = cfg["B"], cfg["threads"]
        say(f"{f'target ({tp / 1e3:.0f}k params): plain KV decoding, B={B}':<58} {th:>3} "
            f"{fmt(cfg['plain']['tokens_s']):>10} {'-':>10} {'tokens/s':<10} {'1x':>10}")
        for d, rows in cfg["drafts"].items():
            for k, row in rows.items():
                acc = f"{100 * row['accept']:.1f}%" if row["accept"] is not None else "-"
                say(f"{f'  {SPEC_DRAFTS[d]} ({dp.get(d, 0) / 1e3:.0f}k params), k={k}, B={B}':<58} {th:>3} "
                    f"{fmt(row['tokens_s']):>10} {acc:>10} {'tokens/s':<10} {row['speedup']:>9.2f}x")
        for d, st in cfg.get("stops_paying", {}).items():
            if st["never_pays"]:
                what = f"never pays (best {st['best_speedup']:.2f}x at k={st['best_k']})"
            elif st["still_rising"]:
                what = f"still rising at k={st['best_k']} ({st['best_speedup']:.2f}x): pays up to the largest k measured"
            else:
                what = (f"best at k={st['best_k']} ({st['best_speedup']:.2f}x), falls beyond; > 1x up to "
                        f"k={st['pays_up_to_k']}")
            say(f"{'':<58}     {SPEC_DRAFTS[d]}, B={B}, {th} thr: {what}")
        if "best" in cfg:
            b = cfg["best"]
            goal = (f" [target >= {SPEC_GOAL:g}x at B=1: {'pass' if b['goal_pass'] else 'FAIL'}]"
                    if "goal_pass" in b else "")
            say(f"{'':<58}     best at B={B}, {th} thr: {SPEC_DRAFTS[b['draft']]}, k={b['k']}, "
                f"{b['speedup']:.2f}x plain decoding{goal}")


# ---- output -------------------------------------------------------------------------
def fmt(v):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def med(v):
    return statistics.median(v) if v else None


def plot(curves, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib missing (apt-get install python3-matplotlib): no PNG"
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), sharey=True)
    groups = [("MADE / FVSBN", ("made", "fvsbn")), ("NADE / RNADE", ("nade", "rnade")),
              ("Transformer", ("tfm", "lm"))]
    for ax, (title, names) in zip(axes, groups):
        for name, c in curves.items():
            if c.get("sec") and name.split()[1] in names:
                xs = [c["bin"] * (i + 0.5) for i in range(len(c["sec"]))]
                style = "-" if name.startswith("ar.h") else "--"
                ax.plot(xs, [1e6 * s for s in c["sec"]], style, marker=".", label=name)
                if name.split()[1] == "lm" and c["places"] > LM_T:
                    ax.axvline(LM_T, color="gray", lw=0.8, ls=":", label=f"LM: T = {LM_T}, a sliding window after")
        ax.set_yscale("log")
        ax.set_xlim(0, D)
        ax.set_xlabel("place in the ordering (mean over bins of 28 places; the LM: 16 positions)")
        ax.set_title(f"{title}: time per sampled place, batch 1")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("microseconds per place")
    fig.text(0.5, 0.005, "solid: ar.h, dashed: PyTorch; median over repeats; the first bin also carries each "
             "call's setup (masking the weights)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    return None


ONLY = ("machine", "train", "sample", "lm", "spec", "places", "xcheck")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bench", default=".build/bench")
    ap.add_argument("--out", default=".build")
    ap.add_argument("--spec", default=None, help="checkpoints of the speculative-sampling rows (default <out>/spec)")
    ap.add_argument("--only", default=None, metavar="SECTION[,SECTION..]",
                    help="measure only these sections: " + ", ".join(ONLY))
    ap.add_argument("--threads", type=int, default=2, help="BLAS and torch threads of the main rows")
    a = ap.parse_args()
    only = set(ONLY)
    if a.only:
        only = {x.strip() for x in a.only.split(",") if x.strip()}
        if not only or only - set(ONLY):
            ap.error(f"--only: sections are {', '.join(ONLY)}")
        if only & {"train", "sample", "lm"}:
            only.add("machine")  # their notes read the machine limits of the same rounds
    spec_dir = a.spec or os.path.join(a.out, "spec")
    t_start, load0 = time.time(), loadavg()
    os.makedirs(a.out, exist_ok=True)
    T = a.threads
    rows = [r for r in plan(a.quick, T) if r.section in only]
    need_torch = "xcheck" in only or "places" in only or any(r.cmd["t"] for r in rows)
    have_torch = need_torch and torch_available()
    # bench.c runs with OpenMP's default wait policy, as a user's program would:
    # the two sides take turns, so their threads never share the cores
    c = Server([a.bench, "--serve", "--spec", spec_dir])
    t = Server([sys.executable, os.path.join(HERE, "peer.py"), "--serve"]) if have_torch else None
    sides = ["c", "t"] if t else ["c"]
    srv = {"c": c, "t": t}
    info_c = c.ask("info - - 0 0 0 0")
    info_t = t.ask("info - - 0 0 0 0") if t else None
    rounds = 2 if a.quick else 3

    # cross-check first: ar.h writes, PyTorch reproduces
    xcheck = None
    if "xcheck" in only:
        xdir = os.path.join(a.out, "bench-xcheck")
        os.makedirs(xdir, exist_ok=True)
        subprocess.run([a.bench, "--xcheck", xdir], check=True, stdout=subprocess.DEVNULL)
        xcheck = t.ask(f"xcheck {xdir}")["xcheck"] if t else None

    # rows that borrow another row's figure come after it
    run_order = sorted(rows, key=lambda r: 1 if any(v and v.startswith("=") for v in r.cmd.values()) else 0)
    for rnd in range(rounds):
        for i, row in enumerate(run_order):
            order = sides if (rnd + i) % 2 == 0 else sides[::-1]
            got = {}
            for s in order:
                if row.cmd[s] and row.cmd[s].startswith("="):  # the figure of another row, this round
                    src = next(x for x in rows if x.key == row.cmd[s][1:])
                    got[s] = src.vals[s][-1]
                    row.vals[s].append(got[s])
                    row.raw[s].append(src.raw[s][-1])
                elif row.cmd[s] and srv[s]:
                    try:
                        res = srv[s].ask(row.cmd[s])
                    except RuntimeError as e:
                        if s == "c":
                            raise
                        print(f"bench: PyTorch peer failed, its columns stop here: {e}", file=sys.stderr)
                        srv["t"] = None
                        continue
                    got[s] = row.value(res)
                    row.vals[s].append(got[s])
                    row.raw[s].append(res)
            if "c" in got and "t" in got:
                row.ratios.append(got["c"] / got["t"] if row.unit != "ms" else got["t"] / got["c"])
    spec = spec_section(c, a.quick, T, spec_dir) if "spec" in only else None
    curves = {}
    for name, s, cmd in (per_place_plan(a.quick, T) if "places" in only else []):
        if srv[s]:
            curves[name] = srv[s].ask(cmd)
    c.close()
    if srv["t"]:
        srv["t"].close()

    # ---- the table ----
    bykey = {r.key: r for r in rows}
    lines = []
    say = lines.append
    say(f"ar.h {info_c['version']} benchmark{' (quick)' if a.quick else ''}"
        + (f", only {', '.join(x for x in ONLY if x in only)}" if a.only else "") + f": {rounds} rounds"
        + (" alternating ar.h and PyTorch; medians; ar.h/torch = median of the rounds' paired ratios, > 1: ar.h faster"
           if info_t else ", ar.h only; medians"))
    say(f"CPU: {cpu_model()}, {os.cpu_count()} cores | load average {load0:.1f} at start, {loadavg():.1f} at end "
        f"(other jobs share the machine: absolute figures are noisy, ratios are paired)")
    say(f"ar.h BLAS: {info_c['config']} | core {info_c['corename']} | OPENBLAS_CORETYPE={info_c['coretype']} | "
        f"threads per row (openblas_set_num_threads), default {info_c['threads']} | "
        + (f"OpenMP {info_c['openmp']}, omp_set_num_threads = row's threads, OMP_WAIT_POLICY={info_c['omp_wait_policy']}"
           if info_c["openmp"]
           else "no OpenMP: the read-bandwidth sum runs on 1 thread"))
    if info_c["kernel_note"]:
        say(f"note: {info_c['kernel_note']}")
    if info_t:
        b = info_t["blas"][0] if info_t["blas"] else {"config": "?", "corename": "?"}
        say(f"PyTorch {info_t['torch']} (Debian python3-torch): BLAS {b['config']} | core {b['corename']} | "
            f"torch.set_num_threads = openblas threads = row's threads | OMP_WAIT_POLICY={info_t['omp_wait_policy']}")
    elif need_torch:
        say("PyTorch: not installed for /usr/bin/python3 (apt-get install python3-torch): PyTorch columns skipped")
    say("")
    hdr = f"{'measure':<58} {'thr':>3} {'ar.h':>10} {'PyTorch':>10} {'unit':<10} {'ar.h/torch':>10}"
    if rows:
        say(hdr)
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            say(f"-- {SECTIONS[section]}")
        cv, tv = med(r.vals["c"]), med(r.vals["t"])
        ratio = med(r.ratios)
        say(f"{r.label:<58} {r.threads:>3} {fmt(cv):>10} {fmt(tv):>10} {r.unit:<10} "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>10}" + (f"  {r.note}" if r.note else ""))
        if r.key.startswith("mlp_step"):
            raw = bykey[r.key.replace("step", "raw")]
            paired = [s / w for s, w in zip(r.vals["c"], raw.vals["c"])]
            peak = med(bykey[f"sgemm{r.threads}"].vals["c"])
            gf = 5 * 2.0 * 100 * 784 * 500 / (cv / 1e3) / 1e9
            say(f"{'  ar.h step / raw sgemm x5 (same rounds)':<58} {r.threads:>3} {fmt(med(paired)):>10} {'':>10} "
                f"{'x':<10}   step at {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of peak sgemm")
        if r.key.startswith("train_") and r.key.split("_")[1] in TRAIN_FLOPS and cv:
            m = r.key.split("_")[1]
            peak = med(bykey[f"sgemm{r.threads}"].vals["c"])
            gf = TRAIN_FLOPS[m] * cv / 1e9
            say(f"{'':<58}     ar.h at {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of peak sgemm ({r.threads} threads)")
        if r.key.startswith("sample_") and r.key.endswith("_1") and cv:
            m = r.key.split("_")[1]
            gbs = WEIGHTS[m] * 4 * cv / 1e9
            bw = med(bykey["bw"].vals["c"])
            say(f"{'':<58}     ar.h reads {gbs:.2f} GB/s of weights = {100 * gbs / bw:.0f}% of copy bandwidth")
        if r.key.startswith("rbw_lm") and r.threads == 1:
            say(f"{'':<58}     {r.raw['c'][0]['bytes'] / 1e6:.1f} MB: the floats an LM step reads (all but the token "
                "table); 1 GiB is far beyond any cache")
        if r.key.startswith("lm_") and cv:
            B, res, th = int(r.key.split("_")[1]), r.raw["c"][0], r.threads
            if B == 1:  # weights streamed against the read bandwidth of the same round and thread count
                gbs = 4 * res["read"] * cv / 1e9
                of = {s: med([4 * res["read"] * x / 1e9 / y
                              for x, y in zip(r.vals["c"], bykey[f"rbw_{s}{th}"].vals["c"])]) for s in ("large", "lm")}
                goal = LM_READ_GOAL.get(th, 0.75)
                say(f"{'':<58}     ar.h streams {gbs:.1f} GB/s of weights = {100 * of['large']:.0f}% of the read "
                    f"bandwidth of 1 GiB [target {100 * goal:.0f}%: {'pass' if of['large'] >= goal else 'FAIL'}], "
                    f"{100 * of['lm']:.0f}% of it at the weight size")
            else:  # 2 flops per weight-matrix element and token; embedding lookups and attention not counted
                gf = 2 * res["matmul"] * cv / 1e9
                of = med([2 * res["matmul"] * x / 1e9 / y
                          for x, y in zip(r.vals["c"], bykey[f"sgemm{th}"].vals["c"])])
                goal = LM_GEMM_GOAL.get(B)
                say(f"{'':<58}     ar.h at {gf:.1f} GFLOP/s in the weight products = {100 * of:.0f}% of peak sgemm"
                    + (f" [target {100 * goal:.0f}%: {'pass' if of >= goal else 'FAIL'}]" if goal else ""))
        if r.key.startswith("train_") and r.vals["t"] and r.raw["t"][0].get("algo") not in (None, "masked-linear"):
            algos = sorted({x["algo"] for x in r.raw["t"]})
            say(f"{'':<58}     torch formulation: {'/'.join(algos)}"
                + (" (fastest of loop and cumsum)" if any("all" in x for x in r.raw["t"]) else ""))
    speed = []
    for m, what in (("made", "one-pass over D full passes"), ("nade", "O(HD) over O(HD^2)"),
                    ("rnade", "O(HD) over O(HD^2)")):
        for B in (1, 100):
            f, n = bykey.get(f"sample_{m}_{B}"), bykey.get(f"naive_{m}_{B}")
            if f and n and f.vals["c"] and n.vals["c"]:
                sp = med([x / y for x, y in zip(f.vals["c"], n.vals["c"])])
                speed.append((f"{TITLE[m]}: {what}, B={B}", sp))
    for k in CNNS:
        for B in (1, 32):
            f, n = bykey.get(f"cnn_cache_{k}_{B}"), bykey.get(f"cnn_naive_{k}_{B}")
            if f and n and f.vals["c"] and n.vals["c"]:
                sp = med([x / y for x, y in zip(f.vals["c"], n.vals["c"])])
                speed.append((f"{CNN_TITLE[k]}: cached over full passes, B={B}", sp))
    if speed:
        say("-- ar.h's samplers against recomputing from scratch (same rounds)")
        for label, sp in speed:
            say(f"{label:<58} {T:>3} {fmt(sp):>10} {'':>10} {'x faster':<10}")
    if spec:
        spec_lines(spec, say)
    if "places" in only:
        say("-- time per sampled place, batch 1: us per place in the first / middle / last bin of 28 places, the LM's "
            "of 16 positions (the first bin carries each call's setup)")
    for name, cv in curves.items():
        s = cv.get("sec") or []
        if s:
            mid = s[len(s) // 2]
            trend = s[-1] / mid if mid > 0 else float("nan")
            if name.split()[1] == "lm":
                note = (f"  (positions 0..{cv['places'] - 1}; " + (f"after {LM_T}: a sliding window of {LM_T})"
                        if cv["places"] > LM_T else "ar_tfm_step stops at T)"))
            else:
                note = f"  (first {cv['places']} places)" if cv["places"] < D else ""
            say(f"{name:<58} {T:>3} {1e6 * s[0]:>10.2f} {1e6 * mid:>10.2f} {1e6 * s[-1]:>10.2f}  "
                f"last/middle {trend:.2f}" + note)
    if "xcheck" in only:
        say("-- cross-check: PyTorch rebuilds each ar.h checkpoint and reproduces log p(x) of a fixed batch "
            "(tol 1e-4 rel)")
        if xcheck:
            for x in xcheck:
                err = f"{x['max_rel_err']:.1e}" if x["max_rel_err"] is not None else "-"
                say(f"{x['name']:<58} {'':>3} {('pass' if x['pass'] else 'FAIL'):>10} {err:>10} {'max rel':<10}"
                    + (f"  {x['note']}" if x["note"] else ""))
        else:
            say("(skipped: no PyTorch)")

    jpath = os.path.join(a.out, "bench.json" if not a.only else
                         f"bench-only-{'-'.join(x for x in ONLY if x in only)}.json")
    png, note = os.path.join(a.out, "bench-per-place.png"), None
    if "places" in only:
        note = plot(curves, png)
    say("")
    say(f"wrote {jpath}" + ((f", {png}" if not note else f" ({note})") if "places" in only else "")
        + f" in {time.time() - t_start:.0f}s")
    print("\n".join(lines))

    out = {
        "quick": a.quick, "rounds": rounds, "threads": T, "cpu": cpu_model(), "cores": os.cpu_count(),
        "loadavg_start": load0, "loadavg_end": loadavg(), "arh": info_c, "torch": info_t,
        "rows": [{"section": r.section, "measure": r.label, "key": r.key, "threads": r.threads, "unit": r.unit,
                  "arh": med(r.vals["c"]), "torch": med(r.vals["t"]), "ratio_arh_over_torch": med(r.ratios),
                  "rounds": {"arh": r.vals["c"], "torch": r.vals["t"]}, "commands": r.cmd, "note": r.note,
                  "torch_detail": r.raw["t"][-1] if r.raw["t"] else None}
                 for r in rows],
        "sampler_speedups": [{"measure": lb, "speedup": sp} for lb, sp in speed],
        "per_place_sec": curves,
        "xcheck": xcheck,
        "speculative": spec,
        "only": sorted(only) if a.only else None,
        "table": lines,
    }
    with open(jpath, "w") as f:
        json.dump(out, f, indent=1)
    fails = [x["name"] for x in (xcheck or []) if not x["pass"]]
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
