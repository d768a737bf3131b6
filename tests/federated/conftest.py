"""Fixtures of the federated tests."""
import numpy as np
import pytest


@pytest.fixture
def unequal_sites(tiny_npz, tmp_path):
    """Two sites (ganforge.federated.site.Site) holding 8 and 32 of ``tiny_npz``'s 40 images."""
    from ganforge.federated.partition import write_partitions
    from ganforge.federated.site import Site

    files = write_partitions(str(tiny_npz), tmp_path / "unequal", 5, "iid")
    small, big = tmp_path / "small.npz", tmp_path / "big.npz"
    parts = [np.load(f) for f in files]
    np.savez(small, images=parts[0]["images"], labels=parts[0]["labels"])
    np.savez(big, images=np.concatenate([p["images"] for p in parts[1:]]),
             labels=np.concatenate([p["labels"] for p in parts[1:]]))
    return [Site(str(path), tmp_path / "w" / path.stem, name=path.stem) for path in (small, big)]
