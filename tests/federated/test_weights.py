"""The arrays a round exchanges: order, shapes, integer buffers left out, the weighted mean."""
import numpy as np
import pytest
from torch import nn

from ganforge.federated import weights


def nets():
    return {"generator": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "discriminator": nn.Linear(4, 1)}


def test_round_trip_and_integer_buffers_stay_local():
    a, b = nets(), nets()
    arrays = weights.to_arrays(a)
    names = [name for name, _ in weights.exchanged_tensors(a)]
    assert names[0].startswith("discriminator.") and "generator.1.num_batches_tracked" not in names
    assert "generator.1.running_var" in names
    weights.load_arrays(b, arrays)
    assert all(np.array_equal(x, y) for x, y in zip(weights.to_arrays(b), arrays))


def test_mismatched_networks_are_refused():
    arrays = weights.to_arrays(nets())
    with pytest.raises(ValueError, match="different networks"):
        weights.load_arrays(nets(), arrays[:-1])
    other = {"generator": nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5)), "discriminator": nn.Linear(4, 1)}
    with pytest.raises(ValueError, match="shape"):
        weights.load_arrays(other, arrays)


def test_weighted_mean_weights_by_images():
    u1, u2 = [np.ones(3, np.float32)], [np.full(3, 4.0, np.float32)]
    assert np.allclose(weights.weighted_mean([u1, u2], [100, 50])[0], 2.0)
    with pytest.raises(ValueError):
        weights.weighted_mean([], [])
