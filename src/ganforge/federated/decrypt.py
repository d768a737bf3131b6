"""A CKKS federation's result made readable: ``ganforge federate decrypt`` (needs the site key).

The server's folder of a CKKS federation holds the encrypted aggregate of the newest rounds and the
initial weights; a holder of the site key decrypts the newest aggregate into an ordinary run folder.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ..config import Config
from ..errors import GanforgeError
from ..runs import latest_checkpoint, read_network_meta
from .he import decrypt, load_context, unpack_weights
from .server import FEDERATION_FILE, FederationConfig, GlobalRun


def decrypt_run(run_dir: Path, key: Path, out: Path) -> Path:
    """A CKKS federation's newest encrypted aggregate, decrypted with the site key, as an ordinary run
    folder at ``out`` (checkpoint, samples, the server's config and metrics)."""
    fed = FederationConfig.load(run_dir / FEDERATION_FILE)
    source = GlobalRun.resume(run_dir)
    chunks = source.latest_encrypted()
    if chunks is None:
        raise GanforgeError(f"{run_dir} holds no encrypted round yet")
    ctx = load_context(key)
    if not ctx.has_secret_key():
        raise GanforgeError(f"{key} holds no secret key: decrypting needs the site key, not the server's")
    template = source.weights()
    mean = unpack_weights(decrypt(ctx, chunks, sum(a.size for a in template) + 1), template)
    meta = read_network_meta(latest_checkpoint(run_dir), "generator")
    plain = GlobalRun.create(out, Config.load(run_dir / "config.json"), dataclasses.replace(fed, he=None,
                             he_context=None), {"geometry": meta["geometry"], "class_names": meta["class_names"]})
    shutil.copyfile(run_dir / "metrics.jsonl", out / "metrics.jsonl")
    plain.round, plain.images, plain.elapsed, plain.privacy = (source.round, source.images, source.elapsed,
                                                               source.privacy)
    plain.load_weights(mean)
    plain.save()
    return out
