"""Federated training: sites train on their own images, a server averages their updates (Flower).

* :mod:`.partition`: splitting one data set over simulated sites (IID, by class, Dirichlet).
* :mod:`.site`: a site's local training rounds (an ordinary run folder at the site).
* :mod:`.site_policy`: what a site checks before it trains for a server (the round's instructions, its terms).
* :mod:`.server`: the server's run folder and the aggregate of a round.
* :mod:`.weights`: the arrays a round exchanges.
* :mod:`.he`: CKKS encryption of the updates (TenSEAL), so the server adds ciphertexts; :mod:`.decrypt`: a
  CKKS result made readable with the site key.
* :mod:`.flower_app`: the Flower ServerApp and ClientApp; their parts: :mod:`.flower_server` (plain and CKKS
  rounds), :mod:`.flower_secure` (SecAgg+ rounds), :mod:`.flower_client` (a site's client and mod).
* :mod:`.credentials`: TLS certificates and the sites' authentication keys (``ganforge federate keys``).
* :mod:`.processes`, :mod:`.launch`: SuperLink, SuperNodes and the run as processes (``ganforge federate``).

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
