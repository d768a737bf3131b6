"""The one-run canary audit: the epsilon bound against closed forms and SciPy, the guesses, and the
pipeline (canaries in, train, score, bound) end to end on a tiny run."""
import json
import math

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.privacy.canary import draw_coins, guesses, judge, make_canaries, with_canaries
from ganforge.privacy.one_run import best_possible_bound, epsilon_lower_bound, p_value


@pytest.mark.parametrize("r", [10, 50, 200])
def test_all_correct_guesses_give_the_closed_form_bound(r):
    """delta = 0 and v = r: the p-value is q^r, so the bound is log(q / (1 - q)) with q^r = 0.05."""
    q = 0.05 ** (1 / r)
    assert epsilon_lower_bound(1000, r, r, delta=0.0) == pytest.approx(math.log(q / (1 - q)), abs=1e-3)
    assert best_possible_bound(1000, r, 0.0) == epsilon_lower_bound(1000, r, r, 0.0)


@pytest.mark.parametrize("m,r,v,eps,delta", [(100, 40, 30, 0.5, 1e-3), (1000, 200, 190, 3.0, 1e-5),
                                             (50, 50, 10, 2.0, 0.01), (300, 100, 100, 4.0, 1e-4),
                                             (300, 100, 0, 1.0, 1e-4)])
def test_p_value_matches_the_theorem_computed_with_scipy(m, r, v, eps, delta):
    binom = pytest.importorskip("scipy.stats").binom
    q = math.exp(eps) / (1 + math.exp(eps))
    beta = binom.sf(v - 1, r, q)  # P[Binomial(r, q) >= v]
    alpha = max((binom.cdf(v - 1, r, q) - binom.cdf(v - i - 1, r, q)) / i for i in range(1, v + 1)) if v else 0
    assert p_value(m, r, v, eps, delta) == pytest.approx(min(beta + 2 * m * delta * alpha, 1), rel=1e-9, abs=1e-15)


def test_random_guesses_bound_nothing_and_delta_weakens_the_bound():
    rng = np.random.default_rng(0)
    for _ in range(5):
        included = rng.random(1000) < 0.5
        result = judge(rng.normal(size=1000), included, 100, 100, delta=1e-5)  # scores unrelated to membership
        assert result.epsilon_lower < 0.5 and 0 <= result.correct <= result.guesses == 200
    assert epsilon_lower_bound(1000, 100, 95, 1e-3) < epsilon_lower_bound(1000, 100, 95, 1e-5) \
        < epsilon_lower_bound(1000, 100, 95, 0.0)
    assert epsilon_lower_bound(1000, 100, 50, 0.0) == 0.0


def test_the_bound_stays_below_the_epsilon_of_randomised_response():
    """eps-DP randomised response on each canary: the 95% bound may exceed eps in at most ~5% of audits."""
    eps, m, trials = 1.0, 500, 200
    q = math.exp(eps) / (1 + math.exp(eps))
    correct = np.random.default_rng(1).binomial(m, q, size=trials)  # every canary guessed, right with prob q
    bounds = np.array([epsilon_lower_bound(m, m, int(v), 0.0) for v in correct])
    assert (bounds > eps).mean() <= 0.1
    assert bounds.max() > 0.5  # the audit is not blind: it comes close to eps


def test_guesses_pick_the_extremes_and_count_right_answers():
    scores = np.array([0.1, 5.0, -3.0, 2.0, 0.0, -1.0])
    assert guesses(scores, 2, 1).tolist() == [0, 1, -1, 1, 0, 0]
    included = np.array([True, True, False, False, False, True])
    result = judge(scores, included, 2, 1, delta=0.0, epsilon_claimed=1.0)
    assert (result.guesses, result.correct) == (3, 2)  # 5.0 member (right), 2.0 member (wrong), -3.0 not (right)
    assert result.included == 3 and result.violation == (result.epsilon_lower > 1.0)
    with pytest.raises(GanforgeError, match="must fit the 6 canaries"):
        guesses(scores, 4, 3)


def test_canaries_join_the_data_by_their_coins(tiny_npz):
    from ganforge.data import load_dataset

    data = load_dataset(str(tiny_npz), progress=False)
    canaries = make_canaries(30, data, seed=3)  # (30, C, R, R) uint8 random patterns at the data's size
    assert canaries.shape == (30, *data.images.shape[1:]) and canaries.dtype == torch.uint8
    assert torch.equal(canaries, make_canaries(30, data, seed=3)) and not torch.equal(canaries, make_canaries(30, data))
    coins = draw_coins(30, 3)
    unlabelled = type(data)(data.images, None, [], data.geometry, data.source)
    mixed = with_canaries(unlabelled, canaries, coins)
    assert len(mixed) == len(data) + coins.sum()
    assert torch.equal(mixed.images[len(data):], canaries[torch.from_numpy(coins)])
    with pytest.raises(GanforgeError, match="unconditional"):
        with_canaries(data, canaries, coins)  # labelled data: the canaries would need labels too


def test_canary_audit_runs_end_to_end(tiny_npz, tmp_path):
    pytest.importorskip("opacus")
    from helpers import tiny_config
    from ganforge.privacy.canary import canary_audit

    cfg = tiny_config(tiny_npz, "train.max_steps=3", "dp.noise=1", "dp.accountant=rdp", "model.d_norm=group",
                      "train.batch_size=10")
    result = canary_audit(cfg, tmp_path / "run", m=20, k_pos=4, k_neg=2, seed=7)
    saved = json.loads((tmp_path / "run" / "audit" / "canary.json").read_text())
    scores = np.load(tmp_path / "run" / "audit" / "canary-scores.npz")
    assert scores["scores"].shape == (20,) and np.isfinite(scores["scores"]).all()
    assert scores["included"].tolist() == draw_coins(20, 7).tolist()
    assert (saved["canaries"], saved["guesses"], saved["seed"]) == (20, 6, 7)
    assert 0 <= saved["correct"] <= 6 and saved["epsilon_lower"] <= saved["epsilon_lower_max"]
    assert saved["epsilon_claimed"] == saved["privacy"]["epsilon"] > 0 and saved["delta"] == saved["privacy"]["delta"]
    assert saved["privacy"]["records"] == 40 + scores["included"].sum()  # the canaries the coins let in trained
    assert result.to_dict() == {k: v for k, v in saved.items() if k not in ("seed", "source", "privacy")}


def test_canary_audit_refuses_a_conditional_run_in_one_line(tiny_npz, tmp_path):
    from helpers import tiny_config
    from ganforge.privacy.canary import canary_audit

    with pytest.raises(GanforgeError, match="unconditional"):
        canary_audit(tiny_config(tiny_npz, "model.conditional=true"), tmp_path / "run", m=10)
