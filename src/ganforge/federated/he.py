"""CKKS homomorphic encryption of the sites' updates (TenSEAL): the server adds ciphertexts it cannot read.

Keys. ``ganforge federate keygen DIR`` writes ``DIR/site.key`` (the CKKS context with its secret
key, mode 0600 from its creation: every site gets a copy, out of band; the server never does) and
``DIR/server.key`` (the same context without the secret key: enough to add ciphertexts, not to
decrypt them). All sites share the one secret key: whoever holds any site's copy and the traffic
(or the server's folder) can decrypt every site's upload and every aggregate.

A round. Site i encrypts the vector [r_i * w_i, r_i] (its weights after the round times its share
r_i = n_i / n of the images a site's D sees in a full round, n_i those its D saw, then r_i), cut into
chunks of one ciphertext each. The server adds the sites'
ciphertexts chunk by chunk and sends the encrypted sum back with the next round; each site
decrypts it and divides by the last entry: sum_i n_i w_i / sum_i n_i, the FedAvg weights. Whole
weights travel (not changes), so a site that missed a round can still decrypt the next one.

Parameters and size. Only additions are computed, so the modulus chain needs no rescaling level:
poly modulus degree 8192 (4,096 slots per ciphertext, 128-bit security for a total modulus up to
218 bits) with two 60-bit primes and scale 2^40, whose ~20 bits of headroom hold sums of
r_i * w_i (r_i <= 1 up to Poisson batch sizes) for any realistic number of sites and weights. Sites encrypt with the secret key (symmetric CKKS), whose
fresh ciphertexts SEAL serialises with half of their data as a seed: 131 kB per 4,096 values, 32 bytes
per value (8x float32; measured, and so is the sum the server returns). The usual parameters (degree
8192 with a [60, 40, 40, 60] chain, public-key encryption) take about 81 MB per million values.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from . import require_tenseal
from .credentials import write_private

POLY_DEGREE = 8192
COEFF_BITS = [60, 60]
SCALE_BITS = 40
SLOTS = POLY_DEGREE // 2
SITE_KEY, SERVER_KEY = "site.key", "server.key"


def keygen(folder: str | Path) -> tuple[Path, Path]:
    """Write a new key pair: (site key with the secret, server key without it)."""
    require_tenseal()
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=POLY_DEGREE, coeff_mod_bit_sizes=COEFF_BITS,
                     encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC)
    ctx.global_scale = 2 ** SCALE_BITS
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    site, server = folder / SITE_KEY, folder / SERVER_KEY
    write_private(site, ctx.serialize(save_secret_key=True))  # mode 0600 from its creation
    server.write_bytes(ctx.serialize(save_secret_key=False))
    return site, server


def server_key_from(site_key: str | Path, folder: str | Path) -> Path:
    """The server's key (no secret) made from a site key, in ``folder``: for a simulation given a site key."""
    ctx = load_context(site_key)
    if not ctx.has_secret_key():
        from ..errors import GanforgeError

        raise GanforgeError(f"{site_key} holds no secret key: simulate --he-key takes the site key (site.key)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    server = folder / SERVER_KEY
    server.write_bytes(ctx.serialize(save_secret_key=False))
    return server


def load_context(path: str | Path):
    require_tenseal()
    import tenseal as ts

    try:
        return ts.context_from(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        from ..errors import GanforgeError

        raise GanforgeError(f"cannot read the CKKS key {path}: {exc}") from None


def encrypt(ctx, vector: np.ndarray) -> list[bytes]:
    """A float vector as serialised ciphertexts of SLOTS values each."""
    import tenseal as ts

    return [ts.ckks_vector(ctx, vector[i:i + SLOTS].tolist()).serialize() for i in range(0, len(vector), SLOTS)]


def decrypt(ctx, chunks: Sequence[bytes], length: int) -> np.ndarray:
    import tenseal as ts

    out = np.concatenate([np.asarray(ts.ckks_vector_from(ctx, c).decrypt()) for c in chunks])
    return out[:length]


def add_ciphertexts(ctx, uploads: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Chunk-wise sum of the sites' ciphertexts (needs no secret key)."""
    import tenseal as ts

    if len({len(u) for u in uploads}) != 1:
        raise ValueError("the sites sent different numbers of ciphertexts")
    sums = []
    for chunks in zip(*uploads):
        total = ts.ckks_vector_from(ctx, chunks[0])
        for c in chunks[1:]:
            total += ts.ckks_vector_from(ctx, c)
        sums.append(total.serialize())
    return sums


def pack_weights(arrays: Sequence[np.ndarray], share: float) -> np.ndarray:
    """[share * w..., share] as one float64 vector (share: the site's aggregation weight, about 1 or less)."""
    return np.concatenate([np.float64(share) * np.concatenate([a.ravel() for a in arrays]), [float(share)]])


def unpack_weights(vector: np.ndarray, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The weighted mean from a decrypted sum [sum r_i w_i..., sum r_i], shaped as ``like``."""
    flat = vector[:-1] / vector[-1]
    out, offset = [], 0
    for a in like:
        out.append(flat[offset:offset + a.size].reshape(a.shape).astype(np.float32))
        offset += a.size
    return out


def write_chunks(path: Path, chunks: Sequence[bytes]) -> None:
    """Ciphertexts in one file: a count, then each length-prefixed (no pickle)."""
    from ..durable import atomic_write_bytes

    parts = [struct.pack("<Q", len(chunks))] + [struct.pack("<Q", len(c)) + c for c in chunks]
    atomic_write_bytes(path, b"".join(parts))


def read_chunks(path: Path) -> list[bytes]:
    data = path.read_bytes()
    (count,), offset, chunks = struct.unpack_from("<Q", data), 8, []
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", data, offset)
        chunks.append(data[offset + 8:offset + 8 + size])
        offset += 8 + size
    return chunks
