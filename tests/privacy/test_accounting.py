"""Accounting: epsilon is Opacus's, the planned noise meets its budget, the step limit respects it."""
import pytest

pytest.importorskip("opacus")

from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402

from ganforge.privacy.accounting import check_delta, default_delta, epsilon, plan_noise, steps_within  # noqa: E402


@pytest.mark.parametrize("name, cls", [("prv", PRVAccountant), ("rdp", RDPAccountant)])
def test_epsilon_is_opacus_for_the_same_history(name, cls):
    reference = cls()
    for _ in range(300):
        reference.step(noise_multiplier=1.1, sample_rate=0.01)
    assert epsilon([(1.1, 0.01, 300)], 1e-5, name) == pytest.approx(reference.get_epsilon(delta=1e-5), rel=1e-9)
    assert epsilon([], 1e-5, name) == 0.0


@pytest.mark.parametrize("name", ["prv", "rdp"])
def test_planned_noise_spends_just_under_the_budget(name):
    noise = plan_noise(4.0, 1e-5, 0.02, 500, name)
    spent = epsilon([(noise, 0.02, 500)], 1e-5, name)
    assert 4.0 - 0.011 <= spent <= 4.0
    assert epsilon([(noise * 0.97, 0.02, 500)], 1e-5, name) > 4.0  # less noise would overspend


def test_a_prior_release_is_paid_for_by_more_noise():
    alone = plan_noise(3.0, 1e-5, 0.02, 400, "rdp")
    with_histogram = plan_noise(3.0, 1e-5, 0.02, 400, "rdp", prior=[(20.0, 1.0, 1)])
    assert with_histogram > alone
    assert epsilon([(20.0, 1.0, 1), (with_histogram, 0.02, 400)], 1e-5, "rdp") <= 3.0


def test_steps_within_is_the_last_step_under_the_budget():
    limit = steps_within(2.0, 1e-5, 1.0, 0.01, "rdp")
    assert epsilon([(1.0, 0.01, limit)], 1e-5, "rdp") <= 2.0 < epsilon([(1.0, 0.01, limit + 1)], 1e-5, "rdp")
    assert steps_within(2.0, 1e-5, 1.0, 0.01, "rdp", upper=10) == 10
    assert steps_within(1e-4, 1e-5, 0.5, 1.0, "rdp") == 0


def test_too_small_a_budget_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="too small"):
        plan_noise(1e-3, 1e-5, 1.0, 10**6, "rdp")


@pytest.mark.parametrize("n, delta", [(60000, 1e-6), (10000, 1e-5), (9999, 1e-5), (1000, 1e-4), (40, 1e-3),
                                      (99, 1e-3), (101, 1e-4)])
def test_default_delta_is_a_power_of_ten_at_most_a_tenth_of_one_over_n(n, delta):
    assert default_delta(n) == pytest.approx(delta) and default_delta(n) <= 0.1 / n


@pytest.mark.parametrize("delta, n", [(1e-4, 10000), (2e-4, 9999), (0.5, 40)])
def test_a_delta_of_one_over_n_or_more_is_refused_with_the_reason(delta, n):
    with pytest.raises(ValueError, match="not below 1/N .*release of one whole record"):
        check_delta(delta, n)
    check_delta(0.99 / n, n)  # below 1/N: allowed (the default stays at a tenth of it)
