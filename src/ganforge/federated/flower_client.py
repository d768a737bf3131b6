"""A site on Flower: the ClientApp's client (describe the data, train a round) and the mod in front of it.

Every round's instructions are checked against the site's own terms first (:mod:`.site_policy`).
The mod (:func:`site_mod`) runs SecAgg+'s client side for the messages of a secure round (they carry
its configuration) and tells the client whether the round is secure, so that a site that requires
SecAgg+ refuses the others and a site sends its training statistics only in plain rounds.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from flwr.app import ConfigRecord, Context, Message
from flwr.app.message_type import MessageType
from flwr.client import Client
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import (Code, FitIns, FitRes, GetPropertiesIns, GetPropertiesRes, Parameters, Status,
                         ndarrays_to_parameters, parameters_to_ndarrays)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from ..errors import GanforgeError

if TYPE_CHECKING:
    from .site import Site
    from .site_policy import RoundPlan, SitePolicy

CKKS = "ckks"
ROUND_RECORD = "ganforge.round"  # in the ClientApp's context state: {"secure": bool} of the current message


def payload_values(parameters: Parameters) -> int:
    """Values a message's parameters carry (float32 arrays; CKKS: slots of its ciphertexts), without reading them."""
    if parameters.tensor_type == CKKS:
        from .he import SLOTS

        return len(parameters.tensors) * SLOTS
    import io

    from numpy.lib import format as npy

    total = 0
    for tensor in parameters.tensors:  # .npy headers: the shapes, without reading the data
        stream = io.BytesIO(tensor)
        try:
            major, _ = npy.read_magic(stream)
            header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
            total += int(np.prod(header(stream)[0]))
        except ValueError:
            raise GanforgeError("refused: the server's weights are not arrays") from None
    return total


class SiteClient(Client):
    """A site as Flower's legacy client: describe the data, train a round within the site's policy."""

    def __init__(self, site: Site, policy: SitePolicy | None = None, secure: bool = False):
        from .site_policy import SitePolicy

        self.site, self.policy, self.secure = site, policy or SitePolicy(), secure

    def get_properties(self, ins: GetPropertiesIns) -> GetPropertiesRes:
        return GetPropertiesRes(Status(Code.OK, ""), {"description": json.dumps(self.site.describe())})

    def fit(self, ins: FitIns) -> FitRes:
        from .site_policy import RoundPlan

        plan = RoundPlan.parse(ins.config)
        self.policy.check(plan, self.secure, self.site, payload_values(ins.parameters))
        if plan.he == CKKS:
            return self._fit_encrypted(plan, ins.parameters)
        result = plan.train(self.site, parameters_to_ndarrays(ins.parameters), share_statistics=not self.secure)
        return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(result.update), result.weight, result.metrics)

    def _fit_encrypted(self, plan: RoundPlan, parameters: Parameters) -> FitRes:
        """Decrypt the global weights (plain in the first round), train, encrypt [r * w, r] with r = weight / cap."""
        from . import he
        from .weights import add

        if not self.policy.he_key:
            raise GanforgeError("this federation encrypts its updates: start the site with --he-key site.key")
        ctx = he.load_context(self.policy.he_key)
        start: list[np.ndarray] = []

        def global_weights(template: list[np.ndarray]) -> list[np.ndarray]:
            if parameters.tensor_type == CKKS:
                length = sum(a.size for a in template) + 1
                start.extend(he.unpack_weights(he.decrypt(ctx, parameters.tensors, length), template))
            else:
                start.extend(parameters_to_ndarrays(parameters))
            return start

        result = plan.train(self.site, global_weights, share_statistics=False)
        share = result.weight / plan.weight_cap()  # at most 1: the sum's headroom holds it
        chunks = he.encrypt(ctx, he.pack_weights(add(start, result.update), share))
        return FitRes(Status(Code.OK, ""), Parameters(chunks, CKKS), result.weight, result.metrics)


def site_from_context(context: Context) -> Site:
    from .site import Site

    node = context.node_config
    if "data" not in node or "work" not in node:
        raise GanforgeError("a site needs --node-config 'data=\"SOURCE\" work=\"FOLDER\"' (ganforge federate site)")
    return Site(str(node["data"]), str(node["work"]), name=str(node.get("name") or "") or None,
                cache_dir=str(node["cache-dir"]) if node.get("cache-dir") else None)


def site_mod(msg: Message, context: Context, call_next):
    """SecAgg+ for the messages of a secure round (they carry its configuration), plain fit otherwise; the
    client learns which from the context (``ROUND_RECORD``)."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    secure = RECORD_KEY_CONFIGS in msg.content.config_records
    context.state.config_records[ROUND_RECORD] = ConfigRecord({"secure": secure})
    return secaggplus_mod(msg, context, call_next) if secure else call_next(msg, context)


def client_fn(context: Context):
    from .site_policy import SitePolicy

    record = context.state.config_records.get(ROUND_RECORD)
    secure = bool(record["secure"]) if record is not None else False
    return SiteClient(site_from_context(context), SitePolicy.from_node_config(context.node_config), secure).to_client()


client_app = ClientApp(client_fn=client_fn, mods=[site_mod])
