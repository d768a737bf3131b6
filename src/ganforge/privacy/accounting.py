"""Privacy accounting with Opacus's accountants (PRV or RDP).

A run's privacy history is a list of ``(noise_multiplier, sample_rate, steps)`` entries, the form
Opacus's accountants keep: one entry for the D steps (the Poisson-subsampled Gaussian mechanism,
advanced by the optimiser at every D step) and, for a conditional run that releases its label
distribution, one entry ``(sigma_h, 1.0, 1)`` before it: a Gaussian histogram of the labels is one
Gaussian mechanism of sensitivity 1 applied to the whole data set (sampling rate 1).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Sequence

import numpy as np

from . import require_opacus

ACCOUNTANTS = ("prv", "rdp")
MAX_NOISE = 1e4  # a budget that needs more noise than this is too small for the planned steps
History = Sequence[tuple[float, float, int]]


DEFAULT_DELTA_SHARE = 0.1  # the default delta is at most this share of 1/N


def default_delta(n_records: int) -> float:
    """The largest power of ten at most 0.1/N (1e-6 for 60,000 records, 1e-5 for 9,999): delta must be
    well below the chance of picking one record, or "private" could mean releasing a few records whole."""
    return 10.0 ** math.floor(math.log10(DEFAULT_DELTA_SHARE / n_records) + 1e-9)


def check_delta(delta: float, n_records: int) -> None:
    """Refuse a delta of 1/N or more: a mechanism that publishes one record of the N whole meets (0, 1/N)-DP."""
    if delta >= 1.0 / n_records:
        raise ValueError(f"dp.delta={delta:g} is not below 1/N = {1.0 / n_records:.3g} for {n_records} records: "
                         "a release of one whole record would meet it; leave it unset for "
                         f"{default_delta(n_records):g} (at most {DEFAULT_DELTA_SHARE:g}/N)")


def make_accountant(name: str, history: History = ()):
    """An Opacus accountant (``prv`` or ``rdp``) holding ``history``."""
    require_opacus()
    from opacus.accountants import create_accountant

    accountant = create_accountant(mechanism=name)
    accountant.history = [tuple(entry) for entry in history]
    return accountant


def epsilon(history: History, delta: float, accountant: str) -> float:
    """The epsilon spent by ``history`` at ``delta`` (0 for an empty history)."""
    if not any(steps for _, _, steps in history):
        return 0.0
    with quiet_accounting():
        return float(make_accountant(accountant, history).get_epsilon(delta=delta))


@contextlib.contextmanager
def quiet_accounting():
    """Silence what the accountants print on the way: the PRV accountant's log(1 - q) at q = 1 (the label
    histogram, harmless: every value passes the comparison it feeds) and the RDP accountant's remarks on
    its range of orders while a search tries extreme noise levels."""
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        yield


def plan_noise(budget: float, delta: float, sample_rate: float, steps: int, accountant: str,
               prior: History = (), tolerance: float = 0.01) -> float:
    """The smallest noise multiplier (to ``tolerance`` in epsilon) with which ``prior`` followed by
    ``steps`` D steps at ``sample_rate`` spends at most ``budget``. Bisection, as Opacus's own
    ``get_noise_multiplier``, extended by the prior entries (the label histogram)."""
    def spent(noise: float) -> float:
        return epsilon([*prior, (noise, sample_rate, steps)], delta, accountant)

    if epsilon(prior, delta, accountant) >= budget:
        raise ValueError(f"the label histogram alone spends epsilon >= {budget:g}; raise dp.label_noise")
    low, high = 0.0, 1.0
    while spent(high) > budget:
        low, high = high, 2 * high
        if high > MAX_NOISE:
            raise ValueError(f"epsilon = {budget:g} is too small for {steps} D steps at sampling rate "
                             f"{sample_rate:.3g}; raise the budget, or train fewer steps or with smaller batches")
    while True:
        mid = (low + high) / 2
        eps = spent(mid)
        if eps <= budget:
            high = mid
            if budget - eps <= tolerance:
                return high
        else:
            low = mid
        if high - low < 1e-6:
            return high


def steps_within(budget: float, delta: float, noise: float, sample_rate: float, accountant: str,
                 prior: History = (), upper: int = 10**8) -> int:
    """The most D steps (up to ``upper``) that ``prior`` followed by them at ``noise`` and
    ``sample_rate`` may take without spending more than ``budget``."""
    def fits(steps: int) -> bool:
        return epsilon([*prior, (noise, sample_rate, steps)], delta, accountant) <= budget

    if not fits(1):
        return 0
    low, high = 1, 2
    while high < upper and fits(high):  # doubling, then bisection: O(log steps) epsilon evaluations
        low, high = high, min(2 * high, upper)
    if high == upper and fits(upper):
        return upper
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
