"""The private D step's per-record bound and its noise, checked on the real step with neighbouring data sets.

Add/remove neighbours: a batch and the same batch with one more record x (first, in the middle, last).
With the same secret seed and the noise off, D's update differs only by x's own clipped term, so
E[B] x (the difference of the two updates) has norm at most C; with the noise on, the update moves by
N(0, (sigma C)^2) per coordinate, divided by E[B].
"""
import pytest
import torch

pytest.importorskip("opacus")

from helpers import tiny_config  # noqa: E402
from ganforge.training.loop import Trainer  # noqa: E402

BATCH, CLIP = 8, 1e-3  # a bound far below D's per-record gradient norms: clipping binds for every record
SGD = ["d_optim.name=sgd", "d_optim.lr=1", "d_optim.momentum=0", "d_optim.weight_decay=0"]


def d_update(data, tmp_path, real, labels, noise: float, *extra) -> torch.Tensor:
    """E[B] x D's gradient in one private step on ``real`` (B, C, R, R): the clipped sum plus the public
    fakes' part plus the noise, read off an SGD step with learning rate 1."""
    cfg = tiny_config(data, "model.d_norm=group", "dp.noise=1", f"dp.max_grad_norm={CLIP}",
                      f"train.batch_size={BATCH}", "train.max_steps=1", *SGD, *extra)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.private._set_noise(noise)
    before = torch.cat([p.detach().flatten() for p in trainer.state.D.parameters()])
    trainer.state.train_step([(real, labels)])  # the training state's own step, with the private D step in it
    after = torch.cat([p.detach().flatten() for p in trainer.state.D.parameters()])
    return (before - after) * trainer.private.optimizer.expected_batch_size


@pytest.fixture
def same_secret(monkeypatch):
    monkeypatch.setattr("ganforge.privacy.engine.draw_secret_seed", lambda: 4321)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_more_record_moves_the_summed_clipped_gradient_by_at_most_c(tiny_npz, tmp_path, same_secret, where,
                                                                        conditional):
    extra = ["model.conditional=true"] if conditional else []
    torch.manual_seed(0)
    records = torch.rand(11, 1, 16, 16) * 2 - 1  # (11, C, R, R): B = 11 records against E[B] = 8
    classes = torch.arange(11) % 2 if conditional else None
    x, x_class = torch.rand(1, 1, 16, 16) * 2 - 1, torch.tensor([1])
    at = {"first": 0, "middle": 5, "last": 11}[where]
    with_x = torch.cat([records[:at], x, records[at:]])
    with_x_classes = torch.cat([classes[:at], x_class, classes[at:]]) if conditional else None

    without = d_update(tiny_npz, tmp_path / "a", records, classes, 0.0, *extra)
    added = d_update(tiny_npz, tmp_path / "b", with_x, with_x_classes, 0.0, *extra)
    moved = (added - without).norm().item()
    assert moved <= CLIP * (1 + 1e-3), f"one record moved the clipped sum by {moved / CLIP:.3f} C"
    assert moved >= CLIP * 0.99  # clipping binds: x's own term has norm C


def test_the_noise_has_standard_deviation_sigma_times_c(tiny_npz, tmp_path, same_secret):
    """The update with noise sigma minus the same update without it is the noise: N(0, (sigma C)^2) in each
    coordinate (thousands of them), mean 0, and a new draw at the next step."""
    sigma = 3.0
    torch.manual_seed(0)
    real = torch.rand(6, 1, 16, 16) * 2 - 1
    noisy = d_update(tiny_npz, tmp_path / "a", real, None, sigma)
    clean = d_update(tiny_npz, tmp_path / "b", real, None, 0.0)
    noise = (noisy - clean).double()  # (parameters,)
    n, expected = noise.numel(), sigma * CLIP
    assert n > 2000
    # the sample standard deviation of n normal draws is within 5 / sqrt(2 n) of the true one but for 1e-6
    assert abs(noise.std().item() / expected - 1) < 5 / (2 * n) ** 0.5
    assert abs(noise.mean().item()) < 5 * expected / n ** 0.5
