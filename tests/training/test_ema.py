"""The averaged generator: weight averaging and BatchNorm statistics recomputed for its weights."""
import pytest
import torch
from torch import nn
from safetensors.torch import load_file

from helpers import tiny_config
from ganforge.models import build_generator, model_config
from ganforge.training.checkpoint import latest_checkpoint
from ganforge.training.ema import EMA, recompute_batchnorm_stats
from ganforge.training.loop import Trainer


def test_decay_from_half_life_in_images():
    ema = EMA(nn.Linear(2, 2), ema_kimg=1.0, batch_size=100)
    assert ema.beta ** 10 == pytest.approx(0.5)  # 10 steps of 100 images = the 1k-image half-life


def test_counting_processes_keeps_the_half_life_in_images():
    one, four = EMA(nn.Linear(2, 2), ema_kimg=1.0, batch_size=100), EMA(nn.Linear(2, 2), ema_kimg=1.0, batch_size=100)
    four.count_processes(4)  # 4 ranks or sites of 100 images: 400 images per update
    assert four.beta == pytest.approx(one.beta ** 4)
    assert four.beta ** 2.5 == pytest.approx(0.5)
    four.set_half_life(2.0)  # a scheduled half-life keeps counting 400 images per update
    assert four.beta ** 5 == pytest.approx(0.5)


def test_update_is_a_moving_average_of_the_weights():
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = EMA(live, ema_kimg=0.001, batch_size=1)  # beta = 0.5
    start = [p.detach().clone() for p in live.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    ema.update(live)
    for e, s in zip(ema.model.parameters(), start):
        torch.testing.assert_close(e, s + 0.5)
    assert not any(p.requires_grad for p in ema.model.parameters())
    assert ema.stale  # its BatchNorm statistics must be recomputed before use



def test_following_a_scaled_move_averages_where_the_server_will_take_g():
    """follow(anchor, s): the average moves toward anchor + s * (G - anchor), the global G after a server step of
    learning rate s; follow(None) goes back to G itself."""
    torch.manual_seed(0)
    live = nn.Linear(3, 3)
    ema = EMA(live, ema_kimg=0.001, batch_size=1)  # beta = 0.5
    start = [p.detach().clone() for p in live.parameters()]
    ema.follow(list(live.parameters()), 3.0)
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    ema.update(live)  # target: start + 3 * 1
    for e, s in zip(ema.model.parameters(), start):
        torch.testing.assert_close(e, s + 0.5 * 3.0)
    ema.follow(None)
    ema.update(live)  # target: G = start + 1
    for e, s in zip(ema.model.parameters(), start):
        torch.testing.assert_close(e, s + 0.5 * 1.5 + 0.5 * 1.0)


def tiny_generator(norm="batch"):
    torch.manual_seed(0)
    return build_generator("dcgan", model_config("dcgan", resolution=16, channels=1, z_dim=8, g_width=8, g_norm=norm))


def test_recomputed_statistics_equal_a_direct_computation_over_the_same_noise():
    G = tiny_generator()
    bn = G.net[1]  # the first BatchNorm, fed by the first transposed convolution
    batches = [(torch.randn(6, 8, generator=torch.Generator().manual_seed(i)),) for i in range(5)]
    with torch.no_grad():  # the direct computation: BatchNorm inputs of each batch, in train mode
        inputs = [G.net[0](z[:, :, None, None]) for (z,) in batches]  # (6, C, 4, 4) each
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(0)
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in inputs]).mean(0)

    bn.running_mean.fill_(123.0)  # stale values that must not survive
    G.eval()
    assert recompute_batchnorm_stats(G, batches) == 2  # 16 px: 4x4 and 8x8 stages
    torch.testing.assert_close(bn.running_mean, means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, variances, rtol=1e-5, atol=1e-6)
    assert not G.training and bn.momentum == 0.1  # mode and momentum restored


def test_without_batchnorm_nothing_changes():
    G = tiny_generator(norm="group")
    before = {k: v.clone() for k, v in G.state_dict().items()}
    assert recompute_batchnorm_stats(G, [(torch.randn(4, 8),)]) == 0
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_ema_statistics_are_refreshed_after_updates_only():
    G = tiny_generator()
    ema = EMA(G, ema_kimg=0.01, batch_size=4, z_dim=8, stat_batches=3)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.5)  # the live G moves away from the average
    G.train()(torch.randn(4, 8))  # and its running statistics follow the live weights
    ema.update(G)
    assert ema.stale
    model = ema.ready()
    expected = tiny_generator()
    expected.load_state_dict(model.state_dict())
    recompute_batchnorm_stats(expected, ema.noise_batches(torch.device("cpu")))
    for key, value in expected.state_dict().items():
        if "running" in key:
            torch.testing.assert_close(model.state_dict()[key], value)
            assert not torch.allclose(value, G.state_dict()[key])  # not the live G's statistics
    assert not ema.stale and not model.training


def test_saved_average_holds_recomputed_statistics(tiny_npz, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_npz, "train.max_steps=4", "train.ema_kimg=0.05"), run)
    trainer.run()
    saved = load_file(str(latest_checkpoint(run) / "generator_ema.safetensors"))
    fresh = build_generator("dcgan", trainer.model_cfg)
    fresh.load_state_dict(saved)
    recompute_batchnorm_stats(fresh, trainer.ema.noise_batches(torch.device("cpu")))
    live = load_file(str(latest_checkpoint(run) / "generator.safetensors"))
    for key, value in fresh.state_dict().items():
        if "running_mean" in key or "running_var" in key:
            torch.testing.assert_close(saved[key], value)
            assert not torch.equal(saved[key], live[key])


def test_loading_an_average_saved_with_the_live_statistics_recomputes_them(tiny_npz, tmp_path):
    import json
    import warnings

    from ganforge import load_generator

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=2", "train.ema_kimg=0.05"), run).run()
    folder = latest_checkpoint(run)
    current = load_generator(run).G.state_dict()
    (folder / "manifest.json").unlink()  # older checkpoints had none
    meta_path = folder / "generator_ema.json"
    meta = json.loads(meta_path.read_text())
    assert meta.pop("batchnorm_stats") == "recomputed"
    meta_path.write_text(json.dumps(meta))  # as an older ganforge wrote it
    from safetensors.torch import save_file

    stale = {k: (v + 5 if "running_mean" in k else v) for k, v in load_file(str(folder / "generator_ema.safetensors")).items()}
    save_file(stale, str(folder / "generator_ema.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkpoint itself is readable
        reloaded = load_generator(run).G.state_dict()
    key = next(k for k in reloaded if "running_mean" in k)
    assert not torch.allclose(reloaded[key], stale[key])  # not the stale statistics
    assert reloaded[key].shape == current[key].shape
