#!/usr/bin/env python3
"""PyTorch reference for `cts-seg bench-train --compare-pytorch`: one Segmenter training step
(forward, mean cross-entropy with ignore 255, backward, SGD with Nesterov momentum 0.9) in PyTorch
(tested with 1.13 CPU, Debian `python3-torch`), with the model of bench/pytorch_segmenter.py.

Protocol: random input and labels, `--warmup` untimed steps, then `--steps` timed steps; prints
the median and spread of the step time and the process's peak resident memory (ru_maxrss).
With `--serve` it builds the model, prints {"ready": true, ...} and then runs one timed step per
`step` line on stdin ({"ms": t, "loss": l}) until `quit` ({"peak_rss_mb": m}): cts-seg alternates
its steps with these so that both see the same machine load.
Without torch it prints {"skipped": reason} and exits 0.
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_segmenter as ps  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="vit-s", choices=sorted(ps.PRESETS))
    ap.add_argument("--decoder", default="mask_transformer", choices=["mask_transformer", "linear"])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--classes", type=int, default=150)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--serve", action="store_true", help="one timed step per 'step' line on stdin (JSON lines)")
    a = ap.parse_args()
    if ps.torch is None:
        print(json.dumps({"skipped": "PyTorch is not installed (apt-get install python3-torch): " + ps.TORCH_ERROR}))
        return
    torch = ps.torch
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, depth, heads = ps.PRESETS[a.backbone]
    size = (a.image_size, a.image_size)
    model = ps.Segmenter(d, depth, heads, a.classes, size, a.decoder, 0, 1.0).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    x = torch.randn(a.batch, 3, *size)
    y = torch.randint(0, a.classes, (a.batch, *size))

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return (time.perf_counter() - t0) * 1000, float(loss)

    if a.serve:
        print(json.dumps({"ready": True, **ps.runtime_info()}), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "quit":
                break
            if cmd != "step":
                print(json.dumps({"error": f"bad command '{cmd}'"}), flush=True)
                continue
            dt, loss = step()
            print(json.dumps({"ms": round(dt, 3), "loss": loss}), flush=True)
        print(json.dumps({"peak_rss_mb": ps.peak_rss_mb()}), flush=True)
        return
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        dt, loss = step()
        losses.append(loss)
        if i >= a.warmup:
            times.append(dt)
    s = sorted(times)
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(), "backbone": a.backbone,
        "image_size": a.image_size, "batch": a.batch, "classes": a.classes, "steps": a.steps,
        "ms_per_step_median": s[len(s) // 2], "ms_per_step_min": s[0], "ms_per_step_max": s[-1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "last_loss": losses[-1],
    }))


if __name__ == "__main__":
    main()
