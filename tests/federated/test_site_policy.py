"""A site checks what the server asks, sends only what its terms allow, and FedAvg weighs sites by their images.

The site's round handling (:class:`SiteClient`) is driven directly with the messages a server would send:
no process, no network."""
import json

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402

from helpers import small_federation as federation  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.federated.flower_client import SiteClient  # noqa: E402
from ganforge.federated.flower_server import aggregate_plain
from ganforge.federated.round_messages import fit_instructions  # noqa: E402
from ganforge.federated.site_policy import SitePolicy  # noqa: E402
from ganforge.federated.weights import weighted_mean  # noqa: E402

D_STATISTICS = ("loss_d", "d_real")  # computed on the site's images (outside the noised sum of a private site)


def instructions(run, **changes) -> FitIns:
    """The FitIns a server sends for the next round of ``run``, with some config fields changed."""
    ins = fit_instructions(run, ndarrays_to_parameters(run.weights()), 2)
    ins.config.update(changes)
    return ins


def dp_config(run, **dp):
    cfg = run.cfg.to_dict()
    cfg["dp"].update(dp)
    cfg["model"]["d_norm"] = "group"
    return json.dumps(cfg)


def test_a_federation_id_outside_the_work_folder_is_refused(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    client = SiteClient(sites[0])
    for bad in ("../escaped", "/tmp/x", "a/../../b", ""):
        with pytest.raises(GanforgeError, match="federation id"):
            client.fit(instructions(run, federation=bad))
        with pytest.raises(GanforgeError, match="federation id|outside"):
            sites[0].run_dir(bad)  # the folder check holds on its own too
    assert not (sites[0].work.parent / "escaped").exists()
    assert client.fit(instructions(run)).status.code == Code.OK  # the server's own id trains


def test_a_site_with_a_ckks_key_refuses_plain_rounds(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    with pytest.raises(GanforgeError, match="encrypted rounds only"):
        SiteClient(sites[0], SitePolicy(he_key="site.key")).fit(instructions(run))
    assert not sites[0].run_dir(run.fed.id).exists()  # refused before training


def test_a_site_that_requires_secure_aggregation_refuses_other_rounds(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    policy = SitePolicy(require_secure=True)
    with pytest.raises(GanforgeError, match="requires secure aggregation"):
        SiteClient(sites[0], policy, secure=False).fit(instructions(run))
    reply = SiteClient(sites[0], policy, secure=True).fit(instructions(run))
    assert reply.status.code == Code.OK
    assert not set(reply.metrics) & {"loss_d", "loss_g", "d_real", "d_fake", "grad_d"}  # secure: no statistics


def test_a_private_site_refuses_rounds_without_its_privacy(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    client = SiteClient(sites[0], SitePolicy(dp_epsilon=3.0))
    with pytest.raises(GanforgeError, match="sets no budget"):
        client.fit(instructions(run))  # no differential privacy at all
    with pytest.raises(GanforgeError, match="sets no budget"):
        client.fit(instructions(run, config=dp_config(run, noise=0.5)))  # a noise level, no budget
    with pytest.raises(GanforgeError, match="larger than this site's"):
        client.fit(instructions(run, config=dp_config(run, epsilon=8.0)))
    with pytest.raises(GanforgeError, match="delta"):
        client.fit(instructions(run, config=dp_config(run, epsilon=2.0, delta=0.5)))
    assert not sites[0].run_dir(run.fed.id).exists()


def test_model_size_from_the_server_is_capped(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)
    values = sum(a.size for a in run.weights())
    small = SiteClient(sites[0], SitePolicy(max_values=values - 1))
    with pytest.raises(GanforgeError, match="max-values"):
        small.fit(instructions(run))
    cfg = run.cfg.to_dict()
    cfg["model"]["g_width"] = 4096  # a huge G in a small message: refused before it is built
    roomy = SiteClient(sites[0], SitePolicy(max_values=values))
    with pytest.raises(GanforgeError, match="model has"):
        roomy.fit(instructions(run, config=json.dumps(cfg)))
    assert roomy.fit(instructions(run)).status.code == Code.OK


def test_a_private_site_sends_no_statistics_of_its_images(tiny_npz, tmp_path):
    pytest.importorskip("opacus")
    run, sites = federation(tiny_npz, tmp_path, "dp", 2, "model.d_norm=group", "dp.noise=1.0",
                            "train.batch_size=10")
    reply = SiteClient(sites[0]).fit(instructions(run))
    assert reply.status.code == Code.OK
    assert not set(D_STATISTICS) & set(reply.metrics), reply.metrics
    # what its run releases: post-processing of the private steps, covered by its epsilon
    assert {"loss_g", "d_fake", "grad_d"} <= set(reply.metrics) and reply.metrics["epsilon"] > 0
    plain_run, plain_sites = federation(tiny_npz, tmp_path, "plain")
    plain = SiteClient(plain_sites[0]).fit(instructions(plain_run))
    assert set(D_STATISTICS) <= set(plain.metrics)  # a plain site reports them (the check is not vacuous)


def test_fedavg_weighs_each_site_by_the_images_it_holds(tiny_npz, tmp_path, unequal_sites):
    run, _ = federation(tiny_npz, tmp_path, max_site_images=100)
    replies = [SiteClient(site).fit(instructions(run)) for site in unequal_sites]
    assert [r.num_examples for r in replies] == [8, 32]  # not the same nominal count for both
    updates = [FitRes(Status(Code.OK, ""), r.parameters, r.num_examples, {}) for r in replies]
    arrays = [parameters_to_ndarrays(r.parameters) for r in replies]
    mean = aggregate_plain(run, updates).mean_update
    weighted, unweighted = weighted_mean(arrays, [8, 32]), weighted_mean(arrays, [1, 1])
    assert all(np.allclose(a, b, atol=1e-7) for a, b in zip(mean, weighted))
    assert not all(np.allclose(a, b, atol=1e-7) for a, b in zip(mean, unweighted))


def test_a_site_cannot_claim_more_images_than_the_cap(tiny_npz, tmp_path):
    run, sites = federation(tiny_npz, tmp_path)  # cap: a round's nominal images, 3 steps x 8 = 24
    reply = SiteClient(sites[0]).fit(instructions(run))
    honest = FitRes(Status(Code.OK, ""), reply.parameters, 20, {})
    boastful = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.ones_like(a) for a in run.weights()]),
                      10 ** 12, {})
    result = aggregate_plain(run, [honest, boastful])
    assert [n for n, _ in result.reports] == [20, 24]
    expected = weighted_mean([parameters_to_ndarrays(reply.parameters), [np.ones_like(a) for a in run.weights()]],
                             [20, 24])
    assert all(np.allclose(a, b) for a, b in zip(result.mean_update, expected))
