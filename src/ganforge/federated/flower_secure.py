"""Secure aggregation rounds: Flower's SecAgg+ (``SecAggPlusWorkflow`` on the server, ``secaggplus_mod`` at
the sites, see :mod:`.flower_client`).

Each site's update u_i is scaled by r_i = w_i / W (w_i: the images it holds, at most the cap W =
``GlobalRun.weight_cap()``; SecAgg+ quantises r_i too), clipped to ``clipping_range``, quantised to
``quantization_range`` levels and masked; the server learns sum_i r_i u_i and sum_i r_i, and divides:
the images-weighted mean, as in a plain round. A site's weight and metrics stay visible to the server.
"""
from __future__ import annotations

import flwr.compat.common.recorddict_compat as compat
from flwr.app import ConfigRecord, Context
from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import Strategy
from flwr.serverapp import Grid

from .round_messages import RoundOutcome, fit_instructions
from .server import GlobalRun


def secure_round(run: GlobalRun, context: Context, grid: Grid, nodes: list[int]) -> RoundOutcome:
    """One round through Flower's SecAgg+ workflow: only the weighted mean of the updates is revealed."""
    from flwr.server import ServerConfig
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat import LegacyContext
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    fed = run.fed
    strategy = _OneSecureRound(fit_instructions(run, ndarrays_to_parameters(run.weights()), len(nodes)))
    manager = SimpleClientManager()
    for node in nodes:
        manager.register(GridClientProxy(node, grid, context.run_id))
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=strategy, client_manager=manager)
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: run.round + 1})
    legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters(run.weights()), keep_input=True)
    # each site's update is scaled by weight / max_weight before it is quantised; the sites cap their weight
    # at the same number, so no scaled update exceeds the clipping range more than the update itself would
    max_weight = run.weight_cap()
    shares = int(fed.shares) if fed.shares > 1 else float(fed.shares)
    threshold = int(fed.threshold) if fed.threshold > 1 else float(fed.threshold)
    workflow = SecAggPlusWorkflow(shares, threshold, max_weight=float(max_weight), clipping_range=fed.clipping_range,
                                  quantization_range=int(fed.quantization_range), timeout=fed.round_timeout)
    workflow(grid, legacy)
    reports = [(res.num_examples, dict(res.metrics)) for res in strategy.results]
    failures = len(nodes) - len(reports)
    if strategy.aggregate is None:
        return RoundOutcome([], failures)
    return RoundOutcome(reports, failures, mean_update=parameters_to_ndarrays(strategy.aggregate))


class _OneSecureRound(Strategy):
    """The legacy strategy SecAgg+ drives: every sampled site gets ``fitins``; keeps the aggregate."""

    def __init__(self, fitins: FitIns):
        self.fitins, self.aggregate, self.results = fitins, None, []

    def initialize_parameters(self, client_manager):
        return None

    def configure_fit(self, server_round, parameters, client_manager):
        return [(proxy, self.fitins) for proxy in client_manager.all().values()]

    def aggregate_fit(self, server_round, results, failures):
        # SecAgg+ hands every result the same parameters: the weighted mean it reconstructed
        self.results = [res for _, res in results]
        self.aggregate = self.results[0].parameters if self.results else None
        return self.aggregate, {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


