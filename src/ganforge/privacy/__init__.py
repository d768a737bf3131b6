"""Differential privacy: D trained privately with Opacus, G private by post-processing, and audits.

* :mod:`.extension`: the hooks through which the training loop runs privately (registered for the ``dp``
  section of the configuration when ``ganforge`` is imported; the training loop never imports this package).
* :mod:`.accounting`: epsilon from Opacus's accountants, the noise for a budget, the steps a budget allows.
* :mod:`.checks`: options refused under DP, each with its reason.
* :mod:`.engine`: what a training state becomes under DP (per-record clipping, noise, Poisson sampling).
* :mod:`.labels`: the class distribution G trains on (uniform, or a DP histogram of the labels).
* :mod:`.audit`: membership-inference attacks on a trained run.
* :mod:`.canary` and :mod:`.one_run`: the one-run canary audit, an empirical lower bound on epsilon.

Opacus is an optional extra (``pip install 'ganforge[privacy]'``); the audit needs only torch and NumPy.
"""
from __future__ import annotations

from ..errors import GanforgeError

INSTALL_HINT = "pip install 'ganforge[privacy]'"


def require_opacus():
    """The opacus module, or a one-line error saying how to install it."""
    try:
        import opacus
    except ImportError:
        raise GanforgeError(f"differentially private training needs Opacus: {INSTALL_HINT}") from None
    return opacus
