"""The statistics of a one-run privacy audit (Steinke, Nasr & Jagielski 2023): from the number of
correct membership guesses to a lower bound on epsilon.

The set-up: m canaries, each included in the training set independently with probability 1/2. After
training, an attacker guesses "member" or "non-member" for r of them (abstaining on the rest) and gets v
right. If training is (eps, delta)-DP with respect to each canary, the paper's main theorem (for
(eps, delta)-DP) bounds the chance of doing that well:

    P[V >= v] <= P[Binomial(r, q) >= v] + 2 m delta alpha,        q = e^eps / (1 + e^eps),
    alpha = max over i in 1..v of P[v - i <= Binomial(r, q) < v] / i.

q is the accuracy of eps-DP randomised response: under pure eps-DP the correct guesses are stochastically
dominated by Binomial(r, q), and delta adds the second term. The right-hand side is the p-value of the
hypothesis "training is (eps, delta)-DP". It grows with eps, so the audit's lower bound at confidence
1 - p is the largest eps whose p-value is still below p: every smaller eps is rejected.

Binomial probabilities are computed in log space with NumPy (no SciPy needed at run time).
"""
from __future__ import annotations

import numpy as np


def _binomial_pmf(r: int, eps: float) -> np.ndarray:
    """P[Binomial(r, q) = k] for k = 0..r, q = e^eps / (1 + e^eps): shape (r + 1,)."""
    k = np.arange(r + 1)
    logs = np.log(np.arange(1, r + 1))
    log_fact = np.concatenate([[0.0], np.cumsum(logs)])  # log k! for k = 0..r
    log_choose = log_fact[r] - log_fact - log_fact[::-1]  # log C(r, k)
    log_q, log_1mq = -np.logaddexp(0.0, -eps), -np.logaddexp(0.0, eps)  # log q, log(1 - q), stable for any eps
    return np.exp(log_choose + k * log_q + (r - k) * log_1mq)


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The chance of v or more correct guesses out of r, on m canaries, if training were (eps, delta)-DP
    (see the module doc); at most 1."""
    _check_counts(m, r, v)
    if eps < 0 or not 0 <= delta <= 1:
        raise ValueError("eps must be >= 0 and delta in [0, 1]")
    pmf = _binomial_pmf(r, eps)  # (r + 1,)
    beta = float(pmf[v:].sum())  # P[Binomial >= v]
    alpha = 0.0
    if delta > 0 and v > 0:
        below = np.cumsum(pmf[:v][::-1])  # below[i - 1] = P[v - i <= Binomial < v], i = 1..v
        alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(beta + 2 * m * delta * alpha, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95,
                        tolerance: float = 1e-4) -> float:
    """The largest eps (to ``tolerance``) such that v correct guesses out of r reject (eps, delta)-DP at
    ``confidence``; 0 when not even eps = 0 is rejected. Bisection, as the p-value grows with eps."""
    _check_counts(m, r, v)
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    p = 1.0 - confidence

    def rejected(eps: float) -> bool:
        return p_value(m, r, v, eps, delta) < p

    if not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):  # v <= r guesses cannot reject every eps: the p-value tends to P[Binomial >= v] -> 1
        low, high = high, 2 * high
    while high - low > tolerance:
        mid = (low + high) / 2
        low, high = (mid, high) if rejected(mid) else (low, mid)
    return low


def best_possible_bound(m: int, r: int, delta: float, confidence: float = 0.95) -> float:
    """The bound if all r guesses were right: the most an audit with these counts can show."""
    return epsilon_lower_bound(m, r, r, delta, confidence)


def _check_counts(m: int, r: int, v: int) -> None:
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")

