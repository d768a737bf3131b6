"""Federated training: sites train on their own images, a server averages their updates (Flower).

* :mod:`.partition`: splitting one data set over simulated sites (IID, by class, Dirichlet).
* :mod:`.site`: a site's local training rounds (an ordinary run folder at the site).
* :mod:`.server`: the server's run folder and the aggregate of a round.
* :mod:`.weights`: the arrays a round exchanges.
* :mod:`.he`: CKKS encryption of the updates (TenSEAL), so the server adds ciphertexts.
* :mod:`.flower_app`: the Flower ServerApp and ClientApp (plain, SecAgg+ or CKKS rounds).
* :mod:`.processes`: SuperLink, SuperNodes and the run as processes (``ganforge federate``).

Flower is an optional extra: ``pip install 'ganforge[federated]'`` (and ``'ganforge[he]'`` for CKKS).
"""
from __future__ import annotations

from ..errors import GanforgeError


def require_flower() -> None:
    """A one-line error when Flower is missing."""
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise GanforgeError("federated training needs Flower: pip install 'ganforge[federated]'") from None


def require_tenseal() -> None:
    try:
        import tenseal  # noqa: F401
    except ImportError:
        raise GanforgeError("--he ckks needs TenSEAL: pip install 'ganforge[he]'") from None
