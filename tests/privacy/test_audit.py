"""The audit: ROC maths against scikit-learn, a planted leak is caught, the command writes its report."""
import json

import numpy as np
import pytest
import torch

from ganforge.privacy.audit import nearest_sample_scores
from ganforge.privacy.roc import AttackResult, roc_auc, roc_curve, tpr_at_fpr


def test_auc_and_roc_match_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    members = np.round(rng.normal(0.3, 1, 300), 1)  # rounded: many ties
    others = np.round(rng.normal(0, 1, 250), 1)
    y = np.r_[np.ones(300), np.zeros(250)]
    scores = np.r_[members, others]
    assert roc_auc(members, others) == pytest.approx(metrics.roc_auc_score(y, scores), abs=1e-12)
    fpr, tpr = roc_curve(members, others)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_tpr_at_low_fpr_and_the_bootstrap_interval():
    members, others = np.arange(100, 200.0), np.arange(0, 100.0)  # perfectly separated
    fpr, tpr = roc_curve(members, others)
    assert tpr_at_fpr(fpr, tpr, 0.01) == 1.0
    chance = AttackResult.from_scores("x", np.random.default_rng(1).normal(size=400),
                                      np.random.default_rng(2).normal(size=400), rounds=200)
    assert chance.auc_low < chance.auc < chance.auc_high and chance.auc_low < 0.5 < chance.auc_high
    assert chance.tpr_at_1pct_fpr < 0.1


def test_a_planted_leak_gives_an_auc_near_one():
    """Generated images that contain the members (slightly perturbed): the black-box attack finds them."""
    torch.manual_seed(0)
    members = torch.rand(200, 1, 16, 16) * 2 - 1
    others = torch.rand(200, 1, 16, 16) * 2 - 1
    generated = torch.cat([members + 0.01 * torch.randn_like(members), torch.rand(800, 1, 16, 16) * 2 - 1])
    result = AttackResult.from_scores("black-box", nearest_sample_scores(members, generated),
                                      nearest_sample_scores(others, generated), rounds=100)
    assert result.auc > 0.99 and result.tpr_at_1pct_fpr > 0.95
    far = torch.rand(1000, 1, 16, 16) * 2 - 1  # a generator that has seen neither: chance
    blind = AttackResult.from_scores("black-box", nearest_sample_scores(members, far),
                                     nearest_sample_scores(others, far), rounds=100)
    assert 0.4 < blind.auc < 0.6


def test_nearest_sample_scores_are_minus_the_squared_distance():
    queries = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])  # (2, 1, 1, 2)
    generated = torch.tensor([[[[0.0, 1.0]]], [[[3.0, 3.0]]]])
    assert nearest_sample_scores(queries, generated).tolist() == pytest.approx([-1.0, -1.0])


def test_audit_command_on_a_trained_run(tiny_npz, tmp_path):
    from ganforge.cli.main import main
    from helpers import tiny_config
    from ganforge.training.loop import Trainer

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_npz, "train.max_steps=3", "model.conditional=true"), run).run()
    code = main(["audit", str(run), "--members", str(tiny_npz), "--non-members", str(tiny_npz), "--n", "20",
                 "--generated", "50", "--no-progress"])
    assert code == 0
    report = json.loads((run / "audit" / "audit.json").read_text())
    assert [a["attack"] for a in report["attacks"]] == ["white-box (D logit)", "black-box (nearest G)"]
    assert report["members"] == report["non_members"] == 20 and report["generated"] == 50
    for attack in report["attacks"]:
        assert 0 <= attack["auc_ci95"][0] <= attack["auc"] <= attack["auc_ci95"][1] <= 1
        assert 0 <= attack["tpr_at_1pct_fpr"] <= 1
    from PIL import Image

    assert Image.open(run / "audit" / "roc.png").size == (592, 592)
