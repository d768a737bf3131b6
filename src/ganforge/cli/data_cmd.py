"""``ganforge data info PATH``: what a data source holds, before training on it."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="inspect data sets")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = data_sub.add_parser("info", help="count, sizes, channels, classes and unreadable files")
    info.add_argument("source", metavar="PATH", help="folder, .zip, .npz/.npy, named set or builtin:NAME")
    info.add_argument("--cache-dir", help="download cache for named sets")
    info.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    from ..data import dataset_info

    print(dataset_info(args.source, cache_dir=args.cache_dir).format())
    return 0
