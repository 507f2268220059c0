#!/usr/bin/env python3
"""PyTorch reference for `cts-seg bench --compare-pytorch`: the same Segmenter (+CTS) shapes in
PyTorch (tested with 1.13 CPU, Debian `python3-torch`), timed with the same protocol.

The modules mirror the official code (segm/model/{vit,blocks,decoder,segmenter}.py, the CTS
policy net = timm efficientnet_lite0 features + 1x1 head) with random weights: speed does not
depend on the values. Token sharing is gather-based with the same token count N = N1 + S as
cts-seg's graph (the official code's mask/sort bookkeeping is slower, so this flatters PyTorch
if anything). Protocol: one image repeated to the batch, forward only under no_grad, fp32,
warm-up iterations, then timed iterations; images/s = batch / mean time.

Prints one JSON object (--json) or a short summary. Without torch it says so and exits 0 with
{"skipped": reason} so that comparison scripts carry on.
"""
import argparse
import json
import math
import platform
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    torch = None
    TORCH_ERROR = str(e)

PRESETS = {
    "vit-ti": (192, 12, 3), "vit_tiny_patch16_384": (192, 12, 3),
    "vit-s": (384, 12, 6), "vit_small_patch16_384": (384, 12, 6),
    "vit-b": (768, 12, 12), "vit_base_patch16_384": (768, 12, 12),
    "vit-l": (1024, 24, 16), "vit_large_patch16_384": (1024, 24, 16),
}

# timm efficientnet_lite0 arch: (type, repeats, kernel, stride, expansion, out channels)
LITE0 = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
         ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320)]


def make_divisible(v, divisor=8):
    n = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return n + divisor if n < 0.9 * v else n


if torch is not None:

    class Attention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads, self.scale = heads, (dim // heads) ** -0.5
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))

    class Block(nn.Module):
        def __init__(self, dim, heads, mlp):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = Attention(dim, heads)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    def conv_bn(cin, cout, k, s, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, kind, cin, cout, k, s, e):
            super().__init__()
            mid = cin if kind == "ds" else make_divisible(cin * e)
            if kind == "ds":
                self.body = nn.Sequential(conv_bn(cin, cin, k, s, cin), conv_bn(cin, cout, 1, 1, act=False))
            else:
                self.body = nn.Sequential(conv_bn(cin, mid, 1, 1), conv_bn(mid, mid, k, s, mid), conv_bn(mid, cout, 1, 1, act=False))
            self.residual = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    class PolicyNet(nn.Module):
        """EfficientNet-Lite0 up to the stride-32, 320-channel map, then Conv2d(320, 2, 1)."""

        def __init__(self, width=1.0):
            super().__init__()
            blocks, cin = [conv_bn(3, 32, 3, 2)], 32
            for kind, rep, k, s, e, c in LITE0:
                cout = c if width == 1 else make_divisible(c * width)
                for j in range(rep):
                    blocks.append(InvertedResidual(kind, cin, cout, k, s if j == 0 else 1, e))
                    cin = cout
            self.backbone, self.head = nn.Sequential(*blocks), nn.Conv2d(cin, 2, 1)

        def forward(self, x):
            return self.head(self.backbone(x))

    class Segmenter(nn.Module):
        def __init__(self, d, depth, heads, n_cls, size, decoder, num_shared, policy_width):
            super().__init__()
            self.P, self.n_cls, self.S = 16, n_cls, num_shared
            self.gh, self.gw = size[0] // 16, size[1] // 16
            self.patch_embed = nn.Conv2d(3, d, 16, 16)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d).normal_(0, 0.02))
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.gh * self.gw, d).normal_(0, 0.02))
            self.blocks = nn.ModuleList(Block(d, heads, 4 * d) for _ in range(depth))
            self.norm = nn.LayerNorm(d)
            self.decoder = decoder
            if decoder == "linear":
                self.head = nn.Linear(d, n_cls)
            else:
                self.proj_dec = nn.Linear(d, d)
                self.dec_blocks = nn.ModuleList(Block(d, d // 64, 4 * d) for _ in range(2))
                self.cls_emb = nn.Parameter(torch.randn(1, n_cls, d) * 0.02)
                self.proj_patch = nn.Parameter(d ** -0.5 * torch.randn(d, d))
                self.proj_classes = nn.Parameter(d ** -0.5 * torch.randn(d, d))
                self.decoder_norm, self.mask_norm = nn.LayerNorm(d), nn.LayerNorm(n_cls)
            self.policy_net = PolicyNet(policy_width) if num_shared > 0 else None

        def plan(self, im):
            """Top-S superpatches by p(share) -> kept patch ids [B,N1], shared ids [B,S], grid cell -> token [B,Nb]."""
            B, gh, gw, S = im.shape[0], self.gh, self.gw, self.S
            sh, sw, nb = gh // 2, gw // 2, gh * gw
            p = self.policy_net(im).softmax(1)[:, 1].flatten(1)
            idx_s = p.topk(S, dim=1).indices.sort(dim=1).values
            flag = torch.zeros(B, sh * sw, device=im.device).scatter_(1, idx_s, 1.0)
            covered = flag.view(B, sh, 1, sw, 1).expand(B, sh, 2, sw, 2).reshape(B, nb)
            key = covered * (2 * nb) + torch.arange(nb, device=im.device)
            idx1 = key.sort(dim=1).indices[:, : nb - 4 * S]
            n1 = idx1.shape[1]
            cell2tok = torch.zeros(B, nb, dtype=torch.long).scatter_(1, idx1, torch.arange(n1).expand(B, n1))
            r, c = 2 * torch.div(idx_s, sw, rounding_mode="floor"), 2 * (idx_s % sw)
            cells = torch.stack([r * gw + c, r * gw + c + 1, (r + 1) * gw + c, (r + 1) * gw + c + 1], 2).reshape(B, 4 * S)
            tok = (n1 + torch.arange(S)).view(1, S, 1).expand(B, S, 4).reshape(B, 4 * S)
            return idx1, idx_s, cell2tok.scatter_(1, cells, tok)

        def encode(self, im):
            B, d = im.shape[0], self.pos_embed.shape[2]
            pos = self.pos_embed[:, 1:]
            x = self.patch_embed(im).flatten(2).transpose(1, 2)
            cell2tok = None
            if self.S > 0:
                idx1, idx_s, cell2tok = self.plan(im)
                xs = self.patch_embed(F.avg_pool2d(im, 2)).flatten(2).transpose(1, 2)
                pos_img = pos.transpose(1, 2).reshape(1, d, self.gh, self.gw)
                pos_s = F.avg_pool2d(pos_img, 2).flatten(2).transpose(1, 2)
                g = lambda t, i: torch.gather(t.expand(B, -1, -1), 1, i.unsqueeze(-1).expand(-1, -1, d))
                x = torch.cat([g(x, idx1), g(xs, idx_s)], 1)
                pos = torch.cat([g(pos, idx1), g(pos_s, idx_s)], 1)
            x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1), x + pos], 1)
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)[:, 1:], cell2tok

        def decode(self, x):
            if self.decoder == "linear":
                return self.head(x)
            n = x.shape[1]
            x = torch.cat([self.proj_dec(x), self.cls_emb.expand(x.shape[0], -1, -1)], 1)
            for blk in self.dec_blocks:
                x = blk(x)
            x = self.decoder_norm(x)
            patches, classes = x[:, :n] @ self.proj_patch, x[:, n:] @ self.proj_classes
            patches = patches / patches.norm(dim=-1, keepdim=True)
            classes = classes / classes.norm(dim=-1, keepdim=True)
            return self.mask_norm(patches @ classes.transpose(1, 2))

        def forward(self, im):
            tokens, cell2tok = self.encode(im)
            masks = self.decode(tokens)  # B, N, K
            B, K = masks.shape[0], masks.shape[2]
            if cell2tok is not None:
                masks = torch.gather(masks, 1, cell2tok.unsqueeze(-1).expand(-1, -1, K))
            grid = masks.transpose(1, 2).reshape(B, K, self.gh, self.gw)
            return F.interpolate(grid, size=im.shape[2:], mode="bilinear", align_corners=False)


def blas_library():
    """The BLAS that torch's matmuls actually call (Debian resolves libblas.so.3 through
    update-alternatives: the reference BLAS is ~15x slower than OpenBLAS, so say which one ran)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if any(k in line for k in ("blas", "mkl_", "libblis"))}
        return sorted(libs)[0] if libs else "unknown"
    except OSError:
        return "unknown"


def stats(ms):
    s = sorted(ms)

    def q(p):
        pos = (len(s) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    r = lambda v: round(v, 2)
    return {"mean": r(sum(s) / len(s)), "median": r(q(0.5)), "p10": r(q(0.1)), "p90": r(q(0.9)), "min": r(s[0]), "max": r(s[-1])}


def time_once(fn, x):
    with torch.no_grad():
        t0 = time.perf_counter()
        fn(x)
        return (time.perf_counter() - t0) * 1000


def time_it(fn, x, warmup, iters, label):
    for _ in range(warmup):
        time_once(fn, x)
    times = []
    for i in range(iters):
        times.append(time_once(fn, x))
        print(f"pytorch {label} {i + 1}/{iters}: {times[-1]:.0f} ms", file=sys.stderr, flush=True)
    return times


def runtime_info():
    return {"framework": "pytorch", "torch_version": torch.__version__, "python_version": platform.python_version(),
            "blas": blas_library(), "threads": torch.get_num_threads()}


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def serve(models, x, default_precision):
    """Line protocol for interleaved timing (cts-seg alternates its iterations with ours so that
    both see the same machine load): `forward S [fp32|int8]` / `policy S [fp32|int8]` -> {"ms": t};
    `quit` -> final info. models: {(S, precision): model}."""
    print(json.dumps({"ready": True, **runtime_info()}), flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "quit":
            break
        try:
            key = (int(args[0]) if args else 0, args[1] if len(args) > 1 else default_precision)
        except ValueError:
            key = None
        model = models.get(key)
        if model is None or cmd not in ("forward", "policy") or (cmd == "policy" and model.policy_net is None):
            print(json.dumps({"error": f"bad command '{line.strip()}'"}), flush=True)
            continue
        print(json.dumps({"ms": round(time_once(model if cmd == "forward" else model.policy_net, x), 3)}), flush=True)
    print(json.dumps({**runtime_info(), "peak_rss_mb": peak_rss_mb()}), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="vit-s", choices=sorted(PRESETS))
    ap.add_argument("--decoder", default="mask_transformer", choices=["mask_transformer", "linear"])
    ap.add_argument("--image-size", default="512", help="N or HxW (multiples of 32 with sharing)")
    ap.add_argument("--classes", type=int, default=150)
    ap.add_argument("--num-shared", default="0", help="shared superpatches S (policy net included when > 0); --serve takes a list, e.g. 0,103")
    ap.add_argument("--policy-width", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (default: torch's)")
    ap.add_argument("--no-policy-timing", action="store_true", help="do not time the policy network on its own")
    ap.add_argument("--serve", action="store_true", help="build the models, then time single iterations on request (stdin/stdout, JSON lines)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quantize-dynamic", choices=["onednn", "qnnpack"],
                    help="int8: torch.ao.quantization.quantize_dynamic on every nn.Linear (qint8 weights, activations "
                         "quantized at run time) with this quantized engine; Debian's torch has no fbgemm")
    ap.add_argument("--precisions", default=None,
                    help="with --serve: the models to build, fp32 and/or int8 (e.g. fp32,int8: both, timed alternately "
                         "by `forward S PRECISION`); default: int8 with --quantize-dynamic, else fp32")
    a = ap.parse_args()
    if torch is None:
        reason = f"PyTorch is not installed ({TORCH_ERROR}); on Debian: apt-get install python3-torch"
        print(f"pytorch_segmenter: skipped: {reason}", file=sys.stderr)
        if a.json or a.serve:
            print(json.dumps({"skipped": reason}), flush=True)
        return 0
    h, _, w = a.image_size.partition("x")
    size = (int(h), int(w or h))
    if a.threads:
        torch.set_num_threads(a.threads)
    d, depth, heads = PRESETS[a.backbone]
    gh, gw = size[0] // 16, size[1] // 16
    budgets = [int(v) for v in a.num_shared.split(",")]
    for S in budgets:
        if S and (size[0] % 32 or size[1] % 32 or S > (gh // 2) * (gw // 2)):
            print(f"pytorch_segmenter: error: num_shared {S} is impossible at {size[0]}x{size[1]}", file=sys.stderr)
            return 2
    precisions = (a.precisions or ("int8" if a.quantize_dynamic else "fp32")).split(",")
    if any(p not in ("fp32", "int8") for p in precisions) or ("int8" in precisions and not a.quantize_dynamic):
        print(f"pytorch_segmenter: error: --precisions takes fp32 and/or int8 (int8 needs --quantize-dynamic), got {a.precisions}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    fp32 = {S: Segmenter(d, depth, heads, a.classes, size, a.decoder, S, a.policy_width).eval() for S in budgets}
    models = {(S, "fp32"): m for S, m in fp32.items()} if "fp32" in precisions else {}
    if "int8" in precisions:
        # the counterpart of `cts-seg --precision int8`: PyTorch's own dynamic quantization of its
        # Linear layers (a quantized copy: the float models stay for fp32 requests)
        torch.backends.quantized.engine = a.quantize_dynamic
        models.update({(S, "int8"): torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8) for S, m in fp32.items()})
    x = (torch.rand(1, 3, *size) * 2 - 1).expand(a.batch, -1, -1, -1).contiguous()
    if a.serve:
        return serve(models, x, precisions[0])
    if len(budgets) != 1 or len(precisions) != 1:
        print("pytorch_segmenter: error: several budgets or precisions need --serve", file=sys.stderr)
        return 2
    S, model = budgets[0], models[(budgets[0], precisions[0])]
    st = stats(time_it(model, x, a.warmup, a.iters, "forward"))
    out = {
        **runtime_info(),
        "backbone": a.backbone, "decoder": a.decoder, "classes": a.classes, "image_size": list(size),
        "batch": a.batch, "warmup": a.warmup, "iters": a.iters, "num_shared": S,
        "tokens_per_image": gh * gw - 3 * S,
        "images_per_second": round(a.batch * 1000 / st["mean"], 3),
        "images_per_second_median": round(a.batch * 1000 / st["median"], 3),
        "ms_per_batch": st,
        "policy_net": None,
        "quantized": a.quantize_dynamic or None,
    }
    if S and not a.no_policy_timing:
        pst = stats(time_it(model.policy_net, x, min(a.warmup, 10), a.iters, "policy net"))
        out["policy_net"] = {"ms_per_batch": pst, "share_of_forward": round(pst["mean"] / st["mean"], 3)}
    out["peak_rss_mb"] = peak_rss_mb()
    if a.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch {torch.__version__} ({out['blas']}), {out['threads']} threads: {out['images_per_second']} images/s, "
              f"{st['median']:.0f} ms/batch median, {out['tokens_per_image']} tokens/image, peak RSS {out['peak_rss_mb']} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
