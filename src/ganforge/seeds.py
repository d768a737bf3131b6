"""Seeds derived from a run's seed: training, differential privacy and data splits draw from them without
importing one another (this module imports nothing heavy)."""
from __future__ import annotations

import hashlib


def stream_seed(seed: int, step: int, stream: int) -> int:
    """A 63-bit seed for random stream ``stream`` of step ``step`` of a run seeded ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{step}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
