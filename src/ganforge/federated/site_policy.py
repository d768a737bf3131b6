"""What a site checks before it trains for a server: the round's instructions, and the site's own terms.

A server (or whoever reaches a site's SuperNode through it) chooses what a round asks. A site does not
take it on trust (:meth:`SitePolicy.check`):

* the federation id must have the server's own format (:data:`FEDERATION_ID`) and name a folder inside the
  site's work folder (an id such as ``../x`` would otherwise write anywhere);
* a site started with a CKKS key (``--he-key``) refuses rounds that are not encrypted;
* ``--require secure-aggregation``: rounds that do not come through SecAgg+ are refused;
* ``--dp-epsilon E``: rounds whose configuration trains without differential privacy, with a budget
  larger than E, or with a delta larger than the site's own (1 / its image count) are refused;
* ``--max-values N``: a model larger than N exchanged values (what the server's configuration builds, and
  what its message carries) is refused before anything is built.

Each refusal is one line, which the server logs as that site's failure of the round.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..config import Config
from ..errors import GanforgeError

FEDERATION_ID = re.compile(r"^[0-9a-f]{12}$")  # FederationConfig's ids: secrets.token_hex(6)
DEFAULT_MAX_VALUES = 100_000_000  # exchanged values (float32: 400 MB per copy); the reference-size models need ~62M
SECURE_AGGREGATION = "secure-aggregation"


@dataclass
class RoundPlan:
    """A round's instructions to a site, read from the server's message (:meth:`parse`)."""
    federation: str
    cfg: Config
    rounds: int
    local_steps: int
    sites: int
    server_lr: float
    he: str  # "ckks" or "" (plain or SecAgg+)
    max_site_images: int | None  # the cap on a site's aggregation weight (None: a round's nominal images)

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> "RoundPlan":
        """The instructions in a round's config record, or a one-line error."""
        try:
            federation = str(config["federation"])
            if not FEDERATION_ID.match(federation):
                raise GanforgeError(f"refused: the federation id {federation[:40]!r} is not of the form the server "
                                    "makes (12 hex digits)")
            cfg = Config.from_dict(json.loads(str(config["config"])))
            cap = int(config.get("max_site_images", 0)) or None
            plan = cls(federation, cfg, int(config["rounds"]), int(config["local_steps"]), int(config.get("sites", 1)),
                       float(config.get("server_lr", 1.0)), str(config.get("he", "")), cap)
        except GanforgeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise GanforgeError(f"refused: the round's instructions are malformed ({type(exc).__name__}: "
                                f"{str(exc)[:120]})") from None
        if plan.rounds < 1 or plan.local_steps < 1 or plan.sites < 1 or not plan.server_lr > 0:
            raise GanforgeError("refused: the round asks for no rounds, steps or sites, or a non-positive server rate")
        if cap is not None and cap < 1:
            raise GanforgeError(f"refused: the cap on a site's images must be positive, got {cap}")
        return plan

    def nominal_images(self) -> int:
        """Real images a site's D sees in a full round (local steps x D steps x batch)."""
        t = self.cfg.train
        return self.local_steps * t.d_steps * t.batch_size

    def weight_cap(self) -> int:
        return self.max_site_images or self.nominal_images()

    def train(self, site, global_weights: Sequence[np.ndarray] | Callable, share_statistics: bool = True):
        return site.train_round(self.federation, self.cfg, self.rounds, self.local_steps, self.sites, global_weights,
                                server_lr=self.server_lr, weight_cap=self.weight_cap(),
                                share_statistics=share_statistics)


@dataclass
class SitePolicy:
    """A site's own terms; :meth:`check` refuses a round that breaks them."""
    he_key: str | None = None  # CKKS site key: only encrypted rounds
    require_secure: bool = False  # only rounds through SecAgg+
    dp_epsilon: float | None = None  # only private rounds with at most this budget
    max_values: int = DEFAULT_MAX_VALUES  # the largest model (exchanged values) the site builds

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any]) -> "SitePolicy":
        require = str(node.get("require") or "")
        if require not in ("", SECURE_AGGREGATION):
            raise GanforgeError(f"--require takes {SECURE_AGGREGATION}, got {require!r}")
        epsilon = node.get("dp-epsilon")
        return cls(he_key=str(node["he-key"]) if node.get("he-key") else None,
                   require_secure=require == SECURE_AGGREGATION,
                   dp_epsilon=float(epsilon) if epsilon not in (None, "") else None,
                   max_values=int(node.get("max-values") or DEFAULT_MAX_VALUES))

    def node_config(self) -> dict[str, str]:
        """The SuperNode's node config that :meth:`from_node_config` reads back (the CKKS key apart)."""
        out = {"max-values": str(self.max_values)}
        if self.require_secure:
            out["require"] = SECURE_AGGREGATION
        if self.dp_epsilon is not None:
            out["dp-epsilon"] = repr(float(self.dp_epsilon))
        return out

    def check(self, plan: RoundPlan, secure: bool, site=None, values: int | None = None) -> None:
        """Refuse (a one-line GanforgeError) a round that breaks this site's terms. ``secure``: the round came
        through SecAgg+; ``site``: the :class:`~ganforge.federated.site.Site` (its work folder and data);
        ``values``: the exchanged values the server's message carries."""
        if self.he_key and plan.he != "ckks":
            raise GanforgeError("refused: this site holds a CKKS key and takes encrypted rounds only; the server "
                                "asked for a plain one")
        if self.require_secure and not secure:
            raise GanforgeError("refused: this site requires secure aggregation (SecAgg+); the round is not secure")
        dp = plan.cfg.dp
        if self.dp_epsilon is not None:
            if not dp.enabled or dp.epsilon is None:
                raise GanforgeError(f"refused: this site trains only with differential privacy at epsilon <= "
                                    f"{self.dp_epsilon:g}; the round sets no budget (dp.epsilon)")
            if dp.epsilon > self.dp_epsilon:
                raise GanforgeError(f"refused: the round's privacy budget epsilon {dp.epsilon:g} is larger than "
                                    f"this site's {self.dp_epsilon:g}")
        if values is not None and values > self.max_values:
            raise GanforgeError(f"refused: the server sent {values:,} values, more than this site's limit of "
                                f"{self.max_values:,} (--max-values)")
        if site is not None:
            site.run_dir(plan.federation)  # inside the work folder, or an error
            if self.dp_epsilon is not None and dp.delta is not None and dp.delta * site.image_count() > 1:
                raise GanforgeError(f"refused: the round's delta {dp.delta:g} is larger than 1 / this site's "
                                    f"{site.image_count()} images")
            model = site.model_values(plan.cfg)
            if model > self.max_values:
                raise GanforgeError(f"refused: the server's model has {model:,} values, more than this site's "
                                    f"limit of {self.max_values:,} (--max-values)")
