"""The training state driven from outside the loop, as a federated site or a DDP rank will drive it."""
import copy

import pytest
import torch

from ganforge.seeds import stream_seed
from helpers import random_batches as batches, state_weights as weights, tiny_state as make_state


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_k_steps_on_given_batches_then_hand_back_the_weights():
    """A site: take the global state, run k local steps on its own batches, return the new weights."""
    data = batches(6)
    straight = make_state()
    for batch in data:
        stats = straight.train_step([batch])
    assert straight.step == 6 and straight.real_batches == 6
    assert set(stats) >= {"loss_d", "loss_g", "penalty_d"} and all(not v.requires_grad for v in stats.values())

    site = make_state()
    for batch in data[:3]:
        site.train_step([batch])
    saved_weights, saved_state = weights(site), copy.deepcopy(site.state_dict())

    resumed = make_state(seed=0)  # a fresh process: same architecture, then the saved state loaded in
    for name, net in resumed.networks().items():
        net.load_state_dict(saved_weights[name])
    resumed.load_state_dict(saved_state)
    for batch in data[3:]:
        resumed.train_step([batch])
    assert same(weights(resumed), weights(straight))  # bit for bit on the CPU


def test_the_batches_drive_the_update():
    a, b = make_state(), make_state()
    a.train_step(batches(1, seed=1))
    b.train_step(batches(1, seed=2))
    assert not same(weights(a), weights(b))


def test_d_steps_take_that_many_batches():
    state = make_state(d_steps=2)
    with pytest.raises(ValueError, match="takes 2 real batch"):
        state.train_step(batches(1))
    state.train_step(batches(2))
    assert state.step == 1 and state.real_batches == 2


def test_random_streams_depend_on_seed_step_and_stream_only():
    assert stream_seed(0, 5, 0) == stream_seed(0, 5, 0)
    assert len({stream_seed(0, 5, 0), stream_seed(0, 5, 1), stream_seed(0, 6, 0), stream_seed(1, 5, 0)}) == 4
    state = make_state()
    state.step = 9
    state.seed_step()
    first = state.noise(3)
    state.noise(3)  # the stream moves on within a step
    state.seed_step()
    assert torch.equal(state.noise(3), first)
