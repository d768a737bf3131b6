"""The ``ganforge`` command: parse arguments, then make one library call per subcommand."""
from __future__ import annotations

import argparse
import sys
import warnings

from .. import __version__
from ..errors import GanforgeError
from . import audit_cmd, data_cmd, eval_cmd, federate_cmd, sample_cmd, train_cmd

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganforge",
        description="Train generative adversarial networks on your own images, then sample them.",
    )
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train_cmd.add_parser(sub)
    sample_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    data_cmd.add_parser(sub)
    audit_cmd.add_parser(sub)
    federate_cmd.add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a checkpoint skipped as unreadable) as one line, without a source listing."""
    print(f"ganforge: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except GanforgeError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
