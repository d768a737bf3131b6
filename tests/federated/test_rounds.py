"""Federated rounds without the network: sites train from the global weights, the server averages.

The Flower glue (tests/federated/test_flower.py) only carries these arrays; here the round logic is
driven directly, as plain FedAvg does it."""
import json

import numpy as np
import pytest

from helpers import fedavg_round, small_federation as federation
from ganforge.federated.server import GlobalRun, agree_on_data
from ganforge.federated.site import Site
from ganforge.federated.weights import exchanged_tensors, weighted_mean
from ganforge.errors import GanforgeError
from ganforge.runs import latest_checkpoint, load_state
from ganforge.sampling import load_generator


def test_a_round_applies_the_images_weighted_mean_and_writes_a_run(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    record, start, results = fedavg_round(run, sites)
    assert [r.images for r in results] == [3 * 8, 3 * 8]  # local steps x batch, D saw each site's own images
    expected = [w + d for w, d in zip(start, weighted_mean([r.update for r in results], [r.images for r in results]))]
    names = [name for name, _ in exchanged_tensors(run.state.networks())]
    refitted = [n.startswith("generator.") and ".running_" in n for n in names]  # G's BatchNorm statistics
    assert all(np.array_equal(a, b) for a, b, fit in zip(run.weights(), expected, refitted) if not fit)
    assert record["round"] == 1 and record["step"] == 3 and record["images"] == 48 and record["sites"] == 2
    assert np.isfinite(record["loss_d"]) and np.isfinite(record["loss_g"])
    fedavg_round(run, sites)
    lines = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == [1, 2]
    gen = load_generator(run.run_dir)
    assert gen.step == 6
    images = gen.sample(4, seed=0, progress=False)
    assert images.shape == (4, 1, 14, 14)  # restored to the data's own size, as any run's samples
    assert (run.run_dir / "samples" / "latest.png").is_file()


def test_sites_keep_their_optimiser_state_between_rounds(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    fedavg_round(run, sites)
    fedavg_round(run, sites)
    saved = load_state(latest_checkpoint(sites[0].run_dir(run.fed.id)))
    assert saved["step"] == 6
    adam_steps = {float(s["step"]) for s in saved["g_opt"]["state"].values()}
    assert adam_steps == {6.0}  # the moments carried over from round 1, not restarted


def test_site_training_is_a_function_of_its_inputs(tiny_npz, tmp_path):
    """The same site, seed and global weights give the same update (what makes SecAgg+ and CKKS
    aggregates comparable with the plain one)."""
    run, sites = federation(tiny_npz, tmp_path)
    twin = Site(sites[0].data_source, tmp_path / "twin", name=sites[0].name)
    args = (run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, len(sites), run.weights())
    a, b = sites[0].train_round(*args), twin.train_round(*args)
    assert all(np.array_equal(x, y) for x, y in zip(a.update, b.update))
    other = Site(sites[0].data_source, tmp_path / "other", name="another-site")  # another name: other noise
    c = other.train_round(*args)
    assert not all(np.array_equal(x, y) for x, y in zip(a.update, c.update))


def test_a_sites_average_counts_the_images_of_all_sites(tiny_npz, tmp_path):
    """G's average takes a step of K sites' images per local step, as a centralised run's average takes a step
    of K x batch images: the same half-life in images at the same images seen. G and D do not change."""
    run, sites = federation(tiny_npz, tmp_path, "fed", 2, "train.ema_kimg=0.05")
    start = run.weights()
    twin = Site(sites[0].data_source, tmp_path / "twin", name=sites[0].name)
    alone = sites[0].train_round(run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, 1, start)
    of_four = twin.train_round(run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, 4, start)
    names = [name for name, _ in exchanged_tensors(run.state.networks())]
    average = [name.startswith("generator_ema.") and "running_" not in name for name in names]
    assert any(average) and not all(average)
    for in_average, a, b in zip(average, alone.update, of_four.update):
        if not in_average:
            assert np.array_equal(a, b)  # G, D and the buffers the average copies from G
    moved_alone = sum(float(np.abs(d).sum()) for d, avg in zip(alone.update, average) if avg)
    moved_of_four = sum(float(np.abs(d).sum()) for d, avg in zip(of_four.update, average) if avg)
    assert moved_of_four > 1.5 * moved_alone  # 4x the images per step: the average follows G faster


def test_with_a_server_learning_rate_a_sites_average_follows_the_stepped_g(tiny_npz, tmp_path):
    """At server learning rate 2 a site's average moves toward start + 2 x (its G - start), where the server will
    take G, so its change (with a half-life of a few images: the average is nearly that point) is twice G's; G, D
    and the buffers do not change."""
    run, sites = federation(tiny_npz, tmp_path, "fed", 2, "train.ema_kimg=0.0001")
    start = run.weights()
    twin = Site(sites[0].data_source, tmp_path / "twin", name=sites[0].name)
    args = (run.fed.id, run.cfg, run.fed.rounds, run.fed.local_steps, 2, start)
    plain, stepped = sites[0].train_round(*args), twin.train_round(*args, server_lr=2.0)
    named = dict(zip([name for name, _ in exchanged_tensors(run.state.networks())], zip(plain.update, stepped.update)))
    for name, (a, b) in named.items():
        if not name.startswith("generator_ema."):
            assert np.array_equal(a, b), name
    weight = "generator_ema.net.0.weight"
    g_change = named[weight.replace("generator_ema.", "generator.")][0]
    np.testing.assert_allclose(named[weight][1], 2 * g_change, atol=1e-5)
    np.testing.assert_allclose(named[weight][0], g_change, atol=1e-5)


def test_resumed_server_continues_bit_for_bit(tiny_npz, tmp_path):
    whole, whole_sites = federation(tiny_npz, tmp_path, "whole")
    fedavg_round(whole, whole_sites)
    fedavg_round(whole, whole_sites)
    part, part_sites = federation(tiny_npz, tmp_path, "part")
    fedavg_round(part, part_sites)
    resumed = GlobalRun.resume(part.run_dir)  # a new server process: everything from the folder
    assert resumed.round == 1 and resumed.images == 48
    fedavg_round(resumed, part_sites)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.weights(), whole.weights()))


def test_sites_must_agree_on_their_images():
    a = {"geometry": {"resolution": 16, "height": 14, "width": 14, "fit": "pad", "channels": 1}, "class_names": ["0"]}
    b = {**a, "geometry": {**a["geometry"], "channels": 3}}
    with pytest.raises(GanforgeError, match="differ"):
        agree_on_data([a, b], conditional=False)
    c = {**a, "class_names": ["x"]}
    with pytest.raises(GanforgeError, match="different classes"):
        agree_on_data([a, c], conditional=True)
    with pytest.raises(GanforgeError, match="no site"):
        agree_on_data([], conditional=False)


def test_private_sites_report_their_epsilon(tiny_npz, tmp_path):
    pytest.importorskip("opacus")
    run, sites = federation(tiny_npz, tmp_path, "dp", 2, "model.d_norm=group", "dp.noise=1.0",
                            "train.batch_size=10")
    record, _, results = fedavg_round(run, sites)
    eps = [r.metrics["epsilon"] for r in results]
    assert all(e > 0 for e in eps) and record["epsilon_max"] == pytest.approx(max(eps), abs=1e-4)
    # a private site reports what its run releases (post-processing), nothing computed on its records
    for r in results:
        assert {"loss_g", "grad_g", "d_fake", "grad_d"} <= r.metrics.keys()
        assert not {"loss_d", "d_real", "class_d"} & r.metrics.keys()
    meta = json.loads((latest_checkpoint(run.run_dir) / "generator.json").read_text())
    assert meta["privacy"]["epsilon"] == pytest.approx(max(eps), abs=1e-4) and meta["privacy"]["sites"] == 2
    assert meta["privacy"]["noise_multiplier"] == 1.0
