"""What the server sends the sites for a round, and what a round gives back to the server.

Shared by the plain, SecAgg+ and CKKS rounds (flower_server.py, flower_secure.py), so that neither module
imports the other for them. A site's own result of its local training is :class:`~.site.SiteUpdate`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.common import FitIns, Parameters

if TYPE_CHECKING:
    from .server import GlobalRun


@dataclass
class RoundOutcome:
    reports: list[tuple[int, dict[str, Any]]]  # (images, metrics) of each site that answered
    failures: int  # sites that failed or did not answer in time
    mean_update: list[np.ndarray] | None = None  # the sites' images-weighted mean change
    encrypted: list[bytes] | None = None  # CKKS: the encrypted sum, which the server cannot read


def fit_instructions(run: "GlobalRun", parameters: Parameters, sites: int) -> FitIns:
    """What a site needs for a round; ``sites``: how many take part (their images make one global step's)."""
    fed = run.fed
    return FitIns(parameters, {"round": run.round + 1, "rounds": fed.rounds, "local_steps": fed.local_steps,
                               "sites": sites, "server_lr": fed.server_lr_of(run.round + 1),
                               "config": json.dumps(run.cfg.to_dict()), "he": fed.he or "", "federation": fed.id,
                               "max_site_images": run.weight_cap()})
