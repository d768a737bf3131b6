"""The server's step: FedAvg, a server learning rate and FedAvgM momentum; buffers always plain means."""
import numpy as np
import pytest

from helpers import fedavg_round, small_federation as federation
from ganforge.errors import ConfigError
from ganforge.federated import weights
from ganforge.federated.server import FederationConfig, GlobalRun
from ganforge.federated.server_step import ServerStep
from torch import nn


def nets():
    return {"generator": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "discriminator": nn.Linear(4, 1),
            "generator_ema": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))}


def arrays_and_mask():
    net = nets()
    return weights.to_arrays(net), weights.server_stepped(net), [name for name, _ in weights.exchanged_tensors(net)]


def test_parameters_and_buffers_are_told_apart():
    _, mask, names = arrays_and_mask()
    flags = dict(zip(names, mask))
    assert flags["generator.0.weight"] and flags["discriminator.bias"]
    assert not flags["generator.1.running_var"] and not flags["generator.1.running_mean"]
    assert not flags["generator_ema.0.weight"]  # G's average: the plain mean (each site moved it as far as G goes)


def test_lr_one_without_momentum_is_fedavg():
    w, mask, _ = arrays_and_mask()
    d = [np.full_like(a, 0.25) for a in w]
    step = ServerStep(1.0, 0.0, mask)
    assert step.plain
    assert all(np.array_equal(new, a + b) for new, a, b in zip(step.apply(w, d), w, d))


def test_server_lr_scales_parameters_and_leaves_buffers_averaged():
    w, mask, names = arrays_and_mask()
    d = [np.full_like(a, -0.5) for a in w]  # a running variance of 1 would turn negative at lr 4
    new = ServerStep(4.0, 0.0, mask).apply(w, d)
    for name, a, b, move in zip(names, w, new, mask):
        assert np.allclose(b, a - (2.0 if move else 0.5)), name
    assert (dict(zip(names, new))["generator.1.running_var"] > 0).all()


def test_momentum_accumulates_over_rounds_and_survives_a_state_round_trip():
    w, mask, _ = arrays_and_mask()
    d = [np.full_like(a, 0.1) for a in w]
    step = ServerStep(2.0, 0.5, mask)
    w1 = step.apply(w, d)
    restored = ServerStep(2.0, 0.5, mask)
    restored.load_state_dict(step.state_dict())
    w2, w2_restored = step.apply(w1, d), restored.apply(w1, d)
    for a, b, c, move in zip(w1, w2, w2_restored, mask):
        assert np.allclose(b - a, 2.0 * 1.5 * 0.1 if move else 0.1)  # v = 0.5 * 0.1 + 0.1
        assert np.array_equal(b, c)


def test_bad_server_options_are_refused():
    with pytest.raises(ConfigError, match="learning rate"):
        FederationConfig(server_lr=0).check()
    with pytest.raises(ConfigError, match="momentum"):
        FederationConfig(server_momentum=1.0).check()
    with pytest.raises(ConfigError, match="cannot read"):
        FederationConfig(he="ckks", server_lr=4).check()
    with pytest.raises(ConfigError, match="last rounds"):
        FederationConfig(server_lr=2, final_server_lr=0).check()
    with pytest.raises(ConfigError, match="final-rounds"):
        FederationConfig(server_lr=2, final_server_lr=1, final_rounds=0).check()
    with pytest.raises(ConfigError, match="cannot read"):
        FederationConfig(he="ckks", final_server_lr=0.5).check()
    FederationConfig(he="ckks", final_server_lr=1).check()  # the plain mean is what CKKS does anyway


def test_only_the_last_rounds_take_the_final_server_lr():
    fed = FederationConfig(rounds=3, server_lr=2.0, final_server_lr=1.0)
    assert [fed.server_lr_of(r) for r in (1, 2, 3)] == [2.0, 2.0, 1.0]
    assert [FederationConfig(rounds=3, server_lr=2.0).server_lr_of(r) for r in (1, 3)] == [2.0, 2.0]
    fed.rounds = 5  # a resumed run with more rounds: the new last round takes it
    assert [fed.server_lr_of(r) for r in (3, 5)] == [2.0, 1.0]
    two = FederationConfig(rounds=4, server_lr=2.0, final_server_lr=1.0, final_rounds=2)
    assert [two.server_lr_of(r) for r in (1, 2, 3, 4)] == [2.0, 2.0, 1.0, 1.0]


def test_a_federation_steps_by_the_server_lr_then_ends_on_the_final_one(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path, "fed", 2, server_lr=2.0, final_server_lr=1.0)
    names = [name for name, _ in weights.exchanged_tensors(run.state.networks())]
    d_params = [i for i, (n, move) in enumerate(zip(names, run.server_step.stepped))
                if move and n.startswith("discriminator.")]  # stepped, and not refitted afterwards
    assert d_params
    for expected_lr in (2.0, 1.0):
        _, start, results = fedavg_round(run, sites)
        mean = weights.weighted_mean([r.update for r in results], [r.images for r in results])
        moved = [b - a for a, b in zip(start, run.weights())]
        assert all(np.allclose(moved[i], expected_lr * mean[i], atol=1e-6) for i in d_params)
        assert any(np.abs(mean[i]).max() > 0 for i in d_params)


def test_a_resumed_federation_keeps_the_servers_velocity(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path, "fed", 3, server_lr=2.0, server_momentum=0.9)
    _, start, results = fedavg_round(run, sites)
    mean = weights.weighted_mean([r.update for r in results], [r.images for r in results])
    moved = [b - a for a, b in zip(start, run.weights())]
    mask = run.server_step.stepped
    names = [name for name, _ in weights.exchanged_tensors(run.state.networks())]
    refitted = [name.startswith("generator.") and ".running_" in name for name in names]  # G's BatchNorm statistics
    assert any(refitted)
    assert all(np.allclose(m, 2.0 * u if p else u, atol=1e-6)
               for m, u, p, fit in zip(moved, mean, mask, refitted) if not fit)
    resumed = GlobalRun.resume(run.run_dir)
    assert resumed.round == 1 and (resumed.server_step.lr, resumed.server_step.momentum) == (2.0, 0.9)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.server_step.velocity, run.server_step.velocity))


def test_the_global_gs_batchnorm_statistics_are_refitted_to_its_new_weights(tiny_npz, tmp_path):
    """The sites' mean running statistics fit none of their Gs, and under a server learning rate not the stepped G:
    after a round the server's G carries the statistics of its own weights over the standing noise."""
    import copy

    import torch

    from ganforge.models.batchnorm import batchnorm_layers, recompute_batchnorm_stats, standing_noise

    run, sites = federation(tiny_npz, tmp_path, "fed", 2, server_lr=2.0)
    _, start, results = fedavg_round(run, sites)
    mean = weights.weighted_mean([r.update for r in results], [r.images for r in results])
    names = [name for name, _ in weights.exchanged_tensors(run.state.networks())]
    plain = {n: a + d for n, a, d in zip(names, start, mean)}  # what a plain mean of the statistics would hold
    expected = copy.deepcopy(run.state.G)
    with torch.no_grad():
        assert recompute_batchnorm_stats(expected, standing_noise(run.cfg.train.batch_size, run.model_cfg.z_dim, 0,
                                                                  "cpu")) > 0
    got = dict(weights.exchanged_tensors({"generator": run.state.G}))
    want = dict(weights.exchanged_tensors({"generator": expected}))
    statistics = [n for n in got if ".running_" in n]
    assert statistics and len(statistics) == 2 * len(batchnorm_layers(run.state.G))
    for name in statistics:
        assert torch.allclose(got[name], want[name], atol=1e-6), name
    assert any(not np.allclose(got[n].numpy(), plain[n], atol=1e-4) for n in statistics)
    assert run.state.G.training == expected.training  # the refit leaves the mode as it was


def test_the_sites_are_told_the_rate_of_the_round(tiny_npz, tmp_path):
    """G's average at each site follows where this round's server step takes G, so the instructions carry the
    round's rate: the last round's is --final-server-lr."""
    pytest.importorskip("flwr")
    from flwr.common import ndarrays_to_parameters

    from ganforge.federated.round_messages import fit_instructions

    run, _ = federation(tiny_npz, tmp_path, "fed", 2, server_lr=2.0, final_server_lr=1.0)
    told = []
    for round_number in (1, 2):
        told.append(fit_instructions(run, ndarrays_to_parameters(run.weights()), 2).config["server_lr"])
        run.round = round_number
    assert told == [2.0, 1.0]
