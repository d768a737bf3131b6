"""The Flower App of a ganforge federation: the ServerApp and ClientApp that the SuperLink and SuperNodes run
(named in ``ganforge/federated/flower/pyproject.toml``).

The server's rounds are :mod:`.flower_server` (plain and CKKS) and :mod:`.flower_secure` (SecAgg+); a site's
client and the mod in front of it are :mod:`.flower_client`.
"""
from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .flower_client import client_app  # noqa: F401 (the ClientApp; the App loads it from .flower_client: no torch)
from .flower_server import serve

app = ServerApp()


@app.main()
def server_main(grid: Grid, context: Context) -> None:
    """The federation's rounds, for the run folder named in the run config (``run-dir``)."""
    serve(grid, context, Path(str(context.run_config["run-dir"])))

