import pytest
import torch
from torch import nn

from ganforge.training.ema import EMA


def test_decay_from_half_life_in_images():
    ema = EMA(nn.Linear(2, 2), ema_kimg=1.0, batch_size=100)
    assert ema.beta ** 10 == pytest.approx(0.5)  # 10 steps of 100 images = the 1k-image half-life


def test_update_is_a_moving_average_and_copies_buffers():
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = EMA(live, ema_kimg=0.001, batch_size=1)  # beta = 0.5
    start = [p.detach().clone() for p in live.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
        live[1].running_mean.fill_(7.0)
    ema.update(live)
    for e, s in zip(ema.model.parameters(), start):
        torch.testing.assert_close(e, s + 0.5)
    assert torch.equal(ema.model[1].running_mean, torch.full((3,), 7.0))
    assert not any(p.requires_grad for p in ema.model.parameters())
