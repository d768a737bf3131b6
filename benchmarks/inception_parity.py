"""Compare ganforge's FID Inception-v3 with the reference implementation (pytorch-fid).

Both networks get the same weights (seeded random ones that keep activations at unit scale,
or the real file with --weights) and the same uint8 images (the reference reads them as float
in [0, 1], 1-channel images as RGB); prints, per input size, the max absolute and max relative
difference of the 2048 pool features and the 1008 logits, and the time per image of each
(indicative only: one timed batch per size).

The reference needs torchvision, so it runs from its own environment:

    local/fidref-venv/bin/python benchmarks/inception_parity.py [--device cuda] [--n 8]

(The tests compare with outputs recorded the same way by tests/metrics/references/record.py.) On a
machine where pytorch-fid is not installed, compare against saved reference outputs:

    local/fidref-venv/bin/python benchmarks/inception_parity.py --save local/inception-ref.pt
    python benchmarks/inception_parity.py --against local/inception-ref.pt --device cuda

On CUDA, TF32 is switched off for the reference too (ganforge's network always runs in exact
float32), so that the comparison measures the implementations, not the precision mode.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ganforge.metrics.inception import FIDInceptionV3, load_inception

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import randomize_  # noqa: E402 (the seeded weights the tests give the network)

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 48), (3, 299, 299)]


def images_for(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """Smooth random images (noise upsampled) so that resizing sees structure, as uint8."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    coarse = torch.rand(n, c, max(h // 4, 2), max(w // 4, 2), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    x = x + 0.1 * torch.randn(n, c, h, w, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def reference_networks(state: dict):
    """pytorch-fid's pool-feature network and its underlying Inception (for the fc layer)."""
    import pytorch_fid.inception as ref

    built = {}
    build = ref.fid_inception_v3

    def capture():
        built["net"] = build()
        return built["net"]

    ref.load_state_dict_from_url = lambda *a, **k: {k: v.clone() for k, v in state.items()}
    ref.fid_inception_v3 = capture
    try:
        pool = ref.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True)
    finally:
        ref.fid_inception_v3 = build
    return pool.eval(), built["net"].eval()


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def report(name: str, ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    diff = (ours.double() - ref.double()).abs().max().item()
    rel = diff / max(ref.abs().max().item(), 1e-12)
    print(f"    {name:8s} scale {ref.abs().max().item():9.4g}  max abs diff {diff:9.3g}  max rel diff {rel:9.3g}")
    return diff, rel


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, default=4, help="images per input size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="the real weights file instead of seeded random weights")
    p.add_argument("--save", help="also save the reference outputs to this file")
    p.add_argument("--against", help="compare with reference outputs saved by --save (no pytorch-fid needed)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    saved = torch.load(args.against, weights_only=True) if args.against else None
    if saved is not None:  # the same weights and images as when saved
        args.n, args.seed = saved["n"], saved["seed"]
        if bool(saved["weights"]) != bool(args.weights):
            p.error(f"{args.against} was saved with {saved['weights'] or 'random weights'}: pass the same --weights")
    ours = load_inception(args.weights) if args.weights else randomize_(FIDInceptionV3(), args.seed)
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    ours = ours.to(device)
    if saved is None:
        ref_pool, ref_net = reference_networks(state)
        ref_pool, ref_net = ref_pool.to(device), ref_net.to(device)
    print(f"device {device}, torch {torch.__version__}, {args.n} images per size, "
          f"weights: {args.weights or f'random (seed {args.seed})'}")

    warm = images_for((3, 32, 32), 1, seed=1).to(device)  # first calls are slow: keep them out of the timings
    ours(warm)
    if saved is None:
        ref_pool(warm.float() / 255)

    worst, outputs = 0.0, {"n": args.n, "seed": args.seed, "weights": args.weights or ""}
    for i, shape in enumerate(SHAPES):
        images = images_for(shape, args.n, seed=args.seed + 100 + i).to(device)
        (features, logits), t_ours = timed(lambda x=images: ours(x), device)
        key = "x".join(map(str, shape))
        if saved is None:
            rgb = images.repeat(1, 3, 1, 1) if shape[0] == 1 else images
            (ref_out,), t_ref = timed(lambda x=rgb: ref_pool(x.float() / 255), device)
            ref_features = ref_out.flatten(1)
            ref_logits = ref_net.fc(ref_features)
            outputs[key] = {"features": ref_features.cpu(), "logits": ref_logits.cpu()}
            timing = f"ours {1000 * t_ours / args.n:.1f} ms/img, reference {1000 * t_ref / args.n:.1f} ms/img"
        else:
            ref_features, ref_logits = saved[key]["features"].to(device), saved[key]["logits"].to(device)
            timing = f"ours {1000 * t_ours / args.n:.1f} ms/img, reference saved"
        print(f"  input {key}: {timing}")
        worst = max(worst, report("features", features, ref_features)[1], report("logits", logits, ref_logits)[1])
    if args.save and saved is None:
        torch.save(outputs, args.save)
        print(f"reference outputs saved to {args.save}")
    print(f"worst max relative difference: {worst:.3g} ({'PASS' if worst <= 1e-5 else 'FAIL'} at 1e-5)")


if __name__ == "__main__":
    main()
