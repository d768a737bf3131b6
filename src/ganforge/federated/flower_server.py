"""The server side of a ganforge federation on Flower: the rounds the ServerApp drives.

Messages use Flower's legacy fit format (``FitIns`` / ``FitRes``), which its SecAgg+ workflow
speaks. A run goes:

1. the server asks every site to describe its data (``get_properties``: geometry and class names,
   never an image) and builds the global networks (:class:`~ganforge.federated.server.GlobalRun`),
   or resumes them from its newest checkpoint;
2. each round, every connected site gets the global weights, the configuration, the round and
   the local step count, trains (:mod:`.flower_client`) and answers with the change of its weights
   and its aggregation weight (the images it holds, at most ``FederationConfig.weight_cap``); the
   server averages the changes weighted so (FedAvg over G, D and G's average: the FedGAN scheme) and
   saves the round. Sites that do not answer within ``round_timeout`` or fail are left out of the
   round, which goes on when at least ``min_sites`` answered.

Aggregation, by ``federation.json``:

* plain: the server sees each site's update and caps each site's weight itself;
* ``secure_aggregation``: Flower's SecAgg+ (:mod:`.flower_secure`); the server learns only the weighted sum;
* ``he="ckks"``: sites encrypt their weighted weights under a CKKS key the server never holds
  (:mod:`ganforge.federated.he`); the server adds ciphertexts and sends the encrypted sum back,
  which each site decrypts at the start of the next round. The server's checkpoints then hold the
  encrypted aggregate only (``ganforge federate decrypt`` turns it into a run with the key).

Traffic is counted at the server on what it sends and receives (array payloads and byte fields),
per round, in ``metrics.jsonl``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import flwr.compat.common.recorddict_compat as compat
from flwr.app import Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import (Code, FitRes, GetPropertiesIns, Parameters, ndarrays_to_parameters,
                         parameters_to_ndarrays)
from flwr.common.constant import MessageTypeLegacy
from flwr.serverapp import Grid

from ..config import Config
from ..errors import GanforgeError
from .server import FEDERATION_FILE, FederationConfig, GlobalRun, agree_on_data
from .round_messages import RoundOutcome, fit_instructions
from .weights import weighted_mean

log = logging.getLogger("flwr.ganforge")  # under Flower's logger: its handlers stream it with the run's log
CKKS = "ckks"


# ---------------------------------------------------------------------------- traffic


def payload_bytes(content: RecordDict) -> int:
    """Bytes of a message's arrays and byte/string fields (its payload, without framing)."""
    total = sum(len(array.data) for record in content.array_records.values() for array in record.values())
    for record in content.config_records.values():
        for value in record.values():
            items = value if isinstance(value, list) else [value]
            total += sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in items)
    return total


class CountingGrid:
    """A Grid that counts the payload bytes it sends and receives, and polls for replies every
    ``POLL_SECONDS`` (Flower's own loop waits 3 s between polls; rounds of small models, and SecAgg+'s
    four exchanges per round, would mostly wait). The rest is the wrapped grid's."""

    POLL_SECONDS = 0.25

    def __init__(self, grid: Grid):
        self._grid, self.sent, self.received = grid, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        messages = list(messages)
        self.sent += sum(payload_bytes(m.content) for m in messages)
        pending = set(self._grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending and (deadline is None or time.monotonic() < deadline):
            pulled = list(self._grid.pull_messages(pending))
            replies += pulled
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if pending:
                time.sleep(self.POLL_SECONDS)
        self.received += sum(payload_bytes(m.content) for m in replies if m.has_content())
        return replies


# ---------------------------------------------------------------------------- rounds


def wait_for_sites(grid: Grid, count: int, timeout: float) -> list[int]:
    """The connected sites' node ids once at least ``count`` are connected."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > deadline:
            raise GanforgeError(f"only {len(nodes)} of the {count} sites needed connected within {timeout:.0f} s")
        time.sleep(1.0)


def describe_sites(grid: Grid, nodes: list[int], timeout: float) -> list[dict[str, Any]]:
    """Each site's description of its data (see Site.describe)."""
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns({}))
    messages = [Message(content=content, dst_node_id=node, message_type=MessageTypeLegacy.GET_PROPERTIES,
                        group_id="describe") for node in nodes]
    answers = []
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_content():
            props = compat.recorddict_to_getpropertiesres(reply.content).properties
            answers.append(json.loads(str(props["description"])))
        else:
            log.warning("a site did not describe its data: %s", reply.error.reason)
    return answers


def serve(grid: Grid, context: Context, run_dir: Path) -> GlobalRun:
    """Run (or resume) the federation in ``run_dir`` to its last round."""
    fed = FederationConfig.load(run_dir / FEDERATION_FILE).check()
    nodes = wait_for_sites(grid, fed.min_sites, fed.round_timeout)
    if (run_dir / "checkpoints").is_dir():
        run = GlobalRun.resume(run_dir)
        log.info("resuming %s after round %d of %d", run_dir, run.round, fed.rounds)
    else:
        cfg = Config.load(run_dir / "config.json")
        answers = describe_sites(CountingGrid(grid), nodes, fed.round_timeout)
        run = GlobalRun.create(run_dir, cfg, fed, agree_on_data(answers, cfg.model.conditional))
    aggregator = make_aggregator(run, context)
    while not run.finished:
        nodes = wait_for_sites(grid, fed.min_sites, fed.round_timeout)
        counting = CountingGrid(grid)
        start = time.perf_counter()
        result = aggregator(counting, nodes)
        seconds = time.perf_counter() - start
        trained = sum(1 for images, _ in result.reports if images > 0)
        if trained < fed.min_sites:
            spent = " (the others' privacy budgets are spent)" if trained < len(result.reports) else ""
            raise GanforgeError(f"round {run.round + 1}: {trained} site(s) trained{spent}, fewer than the "
                                f"{fed.min_sites} needed; resume the federation when the sites are back")
        traffic = {"bytes_down": counting.sent, "bytes_up": counting.received}
        record = run.finish_round(result.reports, result.failures, seconds, traffic, mean_update=result.mean_update,
                                  encrypted=result.encrypted)
        log.info("round %d/%d: %d site(s), %d failure(s), %.1f s, loss_d %.3f loss_g %.3f", record["round"],
                 fed.rounds, record["sites"], record["failures"], seconds, record.get("loss_d", float("nan")),
                 record.get("loss_g", float("nan")))
    return run


def _split_replies(replies: list[Message]) -> tuple[list[FitRes], int]:
    results, failures = [], 0
    for reply in replies:
        if not reply.has_content():
            log.warning("a site failed this round: %s", reply.error.reason)
            failures += 1
            continue
        res = compat.recorddict_to_fitres(reply.content, keep_input=False)
        if res.status.code != Code.OK:
            log.warning("a site failed this round: %s", res.status.message)
            failures += 1
        else:
            results.append(res)
    return results, failures


def make_aggregator(run: GlobalRun, context: Context) -> Callable[[Grid, list[int]], RoundOutcome]:
    fed = run.fed
    if fed.secure_aggregation:
        from .flower_secure import secure_round

        return lambda grid, nodes: secure_round(run, context, grid, nodes)
    if fed.he == CKKS:
        return EncryptedRounds(run).round
    return lambda grid, nodes: plain_round(run, grid, nodes)


def send_fit(run: GlobalRun, grid: Grid, nodes: list[int], parameters: Parameters) -> tuple[list[FitRes], int]:
    content = compat.fitins_to_recorddict(fit_instructions(run, parameters, len(nodes)), keep_input=True)
    messages = [Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN,
                        group_id=str(run.round + 1)) for node in nodes]
    replies = list(grid.send_and_receive(messages, timeout=run.fed.round_timeout))
    results, failures = _split_replies(replies)
    return results, failures + len(nodes) - len(replies)


def plain_round(run: GlobalRun, grid: Grid, nodes: list[int]) -> RoundOutcome:
    """FedAvg in the clear: the images-weighted mean of the sites' updates."""
    results, failures = send_fit(run, grid, nodes, ndarrays_to_parameters(run.weights()))
    return aggregate_plain(run, results, failures)


def aggregate_plain(run: GlobalRun, results: list[FitRes], failures: int = 0) -> RoundOutcome:
    """The sites' updates averaged, each weighted by the images it holds, capped at ``run.weight_cap()`` here
    (a site cannot claim 10^12 images to outweigh the others)."""
    cap = run.weight_cap()
    reports = [(min(res.num_examples, cap), dict(res.metrics)) for res in results]
    trained = [(n, res) for (n, _), res in zip(reports, results) if n > 0]  # (a spent privacy budget: none)
    if not trained:
        return RoundOutcome(reports, failures)
    mean = weighted_mean([parameters_to_ndarrays(res.parameters) for _, res in trained], [n for n, _ in trained])
    return RoundOutcome(reports, failures, mean_update=mean)


class EncryptedRounds:
    """CKKS rounds: the server adds the sites' ciphertexts and sends the sum back with the next round."""

    def __init__(self, run: GlobalRun):
        from . import he

        if not run.fed.he_context:
            raise GanforgeError("--he ckks needs the server key (federation.json he_context; ganforge federate keygen)")
        self.run, self.ctx = run, he.load_context(run.fed.he_context)
        self.aggregate = run.latest_encrypted()  # None before the first round: the initial weights are public

    def round(self, grid: Grid, nodes: list[int]) -> RoundOutcome:
        from . import he

        run = self.run
        params = (Parameters(self.aggregate, CKKS) if self.aggregate is not None
                  else ndarrays_to_parameters(run.weights()))
        results, failures = send_fit(run, grid, nodes, params)
        reports = [(res.num_examples, dict(res.metrics)) for res in results]
        if not results:
            return RoundOutcome(reports, failures)
        self.aggregate = he.add_ciphertexts(self.ctx, [res.parameters.tensors for res in results])
        return RoundOutcome(reports, failures, encrypted=self.aggregate)
