"""``ganforge audit RUN --members TRAIN --non-members HELDOUT``: membership-inference attacks on a run."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GanforgeError


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="test whether a run reveals its training images (membership inference)",
                       description="White-box (D's score) and black-box (nearest generated image) membership-inference "
                                   "attacks: ROC AUC with a 95%% interval, TPR at 1%% FPR and a ROC plot.")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint folder")
    p.add_argument("--members", required=True, metavar="SOURCE", help="images the run was trained on")
    p.add_argument("--non-members", required=True, metavar="SOURCE", help="held-out images of the same kind")
    p.add_argument("--n", type=int, default=1000, help="queries of each kind (default 1000)")
    p.add_argument("--generated", type=int, default=10000, help="generated images for the black-box attack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", metavar="DIR", help="where audit.json and roc.png go (default RUN/audit)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..privacy.audit import audit_run, save_report
    from .train_cmd import describe_privacy

    if args.n < 10 or args.generated < 1:
        raise GanforgeError("--n must be at least 10 and --generated at least 1")
    report = audit_run(args.run, args.members, args.non_members, n_queries=args.n, n_generated=args.generated,
                       seed=args.seed, device=args.device, progress=not args.no_progress)
    print(f"membership inference on {args.run} (step {report.step}): {report.n_members} members, "
          f"{report.n_non_members} non-members, {report.n_generated} generated images")
    print(report.table())
    if report.privacy:
        print(f"the run is differentially private: {describe_privacy(report.privacy)}")
    out = Path(args.out) if args.out else _default_out(Path(args.run))
    json_path, plot_path = save_report(report, out)
    print(f"results: {json_path}  ROC curves: {plot_path}")
    return 0


def _default_out(run: Path) -> Path:
    """RUN/audit for a run folder; beside the checkpoints for a checkpoint folder."""
    return (run.parent.parent if run.parent.name == "checkpoints" else run) / "audit"
