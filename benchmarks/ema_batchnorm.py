"""BatchNorm statistics of the averaged generator: live G vs the average with copied vs recomputed statistics.

Takes a finished run (trained with ``train.ema_kimg > 0`` and a G with BatchNorm) and scores
10,000 samples of each of three generators against held-out images with the domain network
(fd_domain, Fréchet distance in an independent classifier's feature space):

* live G: the last iterate, with its own running statistics;
* average, copied statistics: the averaged weights with the live G's running statistics, which
  is what ganforge saved before the statistics were recomputed;
* average, recomputed statistics: the same weights with standing statistics
  (``ganforge.training.ema.recompute_batchnorm_stats``), what ganforge saves now.

    ganforge train --data local/fmnist-train.npz --max-steps 8136 --out local/runs/ema-bench
    python benchmarks/ema_batchnorm.py local/runs/ema-bench local/fmnist-train.npz local/fmnist-test.npz
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ganforge.metrics.domain import extract, load_or_train
from ganforge.metrics.frechet import GaussianStats, frechet_distance
from ganforge.models import build_generator, model_config
from ganforge.pixels import to_uint8
from ganforge.training.checkpoint import find_checkpoint, load_network_weights, read_network_meta
from ganforge.training.ema import EMA, batchnorm_layers, recompute_batchnorm_stats
from ganforge.training.runtime import cpu_name
from ganforge.data.geometry import Geometry


def load_images(path: str) -> tuple[torch.Tensor, np.ndarray]:
    d = np.load(path)
    x = d["images"]
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x)), d["labels"]


@torch.no_grad()
def samples(G, z_dim: int, n: int, geometry: Geometry, seed: int = 0) -> torch.Tensor:
    G.eval()
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    return geometry.restore(torch.cat([to_uint8(G(chunk)) for chunk in z.split(500)]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("train", help="training images (.npz with labels), for the domain network")
    p.add_argument("heldout", help="held-out images (.npz), the reference")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--stat-batches", type=int, default=50)
    args = p.parse_args()
    torch.set_grad_enabled(False)

    folder = find_checkpoint(args.run)
    meta = read_network_meta(folder, "generator_ema")
    cfg = model_config(meta["arch"], **meta["model"])
    geometry = Geometry.from_dict(meta["geometry"])
    batch = 64
    try:
        import json

        batch = json.loads((folder.parent.parent / "config.json").read_text())["train"]["batch_size"]
    except (OSError, KeyError, ValueError):
        pass

    live = build_generator(meta["arch"], cfg)
    load_network_weights(folder, "generator", live)
    saved_avg = build_generator(meta["arch"], cfg)
    load_network_weights(folder, "generator_ema", saved_avg)
    copied = build_generator(meta["arch"], cfg)  # averaged weights + the live G's running statistics
    copied.load_state_dict({**saved_avg.state_dict(),
                            **{k: v for k, v in live.state_dict().items() if "running" in k or "num_batches" in k}})
    recomputed = build_generator(meta["arch"], cfg)
    recomputed.load_state_dict(saved_avg.state_dict())
    if not batchnorm_layers(recomputed):
        raise SystemExit("this run's G has no BatchNorm: nothing to compare")
    ema = EMA(recomputed, ema_kimg=1.0, batch_size=batch, z_dim=cfg.z_dim, stat_batches=args.stat_batches)
    recompute_batchnorm_stats(recomputed, ema.noise_batches(torch.device("cpu")))
    saved_stats, fresh_stats = saved_avg.state_dict(), recomputed.state_dict()
    drift = max(float((saved_stats[k] - fresh_stats[k]).abs().max() / fresh_stats[k].abs().max().clamp(min=1e-12))
                for k in fresh_stats if "running" in k)

    train_x, train_y = load_images(args.train)
    net, _ = load_or_train(train_x, torch.from_numpy(train_y.astype(np.int64)))
    test_x, _ = load_images(args.heldout)
    ref = GaussianStats.of(extract(net, test_x)[0].numpy())

    print(f"CPU: {cpu_name()}; run {args.run} at step {meta['step']}; {args.n} samples vs {len(test_x)} held-out")
    print(f"standing statistics: {args.stat_batches} batches of {batch}, float32; largest relative difference "
          f"from the statistics the run saved: {drift:.2g}")
    print(f"{'generator':50s} fd_domain")
    for name, G in (("live G", live), ("average, live G's statistics (as saved before)", copied),
                    ("average, statistics as this run saved them", saved_avg),
                    ("average, recomputed statistics (saved now)", recomputed)):
        feats = extract(net, samples(G, cfg.z_dim, args.n, geometry))[0].numpy()
        print(f"{name:50s} {frechet_distance(GaussianStats.of(feats), ref):9.3f}")


if __name__ == "__main__":
    main()
