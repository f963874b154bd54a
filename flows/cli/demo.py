"""`facenet demo`: the whole pipeline on a generated dataset, then where to look at the results."""

from __future__ import annotations

import argparse
import time

from facenet_core.config.loading import load_config
from flows.runtime import prepare_process


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run facenet-train end to end on generated faces (embedded Prefect and MLflow, CPU)",
        description="Generate synthetic identities, fetch them through the download stage, crop them with "
        "MTCNN, train, evaluate on held-out identities and register the model. A second run comes back Cached.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", default="demo", help="preset to run: a packaged preset's name or a YAML file")
    parser.add_argument("--workspace", default=None, help="workspace folder (default: the preset's)")
    parser.set_defaults(func=run)


def _print_summary(summary: dict, seconds: float) -> None:
    print(f"\nfacenet demo finished in {seconds:.0f} s; run {summary['run_key']} in {summary['run_dir']}")
    states = ", ".join(f"{count} {state}" for state, count in sorted(summary["stage_states"].items()))
    print(f"stages: {states}")
    print("\nevaluation per epoch:")
    print(f"  {'epoch':>5}  {'eval set':<16} {'accuracy':>14} {'roc_auc':>8} {'tar@far1e-3':>11}")
    for row in summary["evaluations"]:
        m = row["metrics"]
        acc = f"{m['accuracy']:.4f}+-{m['accuracy_std']:.4f}"
        print(f"  {row['epoch']:>5}  {row['eval_set']:<16} {acc:>14} {m['roc_auc']:>8.4f} {m['tar_at_far']:>11.4f}")
    registered = summary.get("registered") or {}
    if registered:
        print(
            f"\nregistered model: {registered['model_uri']} (alias: {registered.get('alias')}; "
            f"{registered.get('reason', '')})"
        )
    print(f"reports and plots: {summary['run_dir']}/reports")
    print(f"MLflow UI: mlflow ui --backend-store-uri {summary['tracking_uri']}")
    print(f"load it:   mlflow.pytorch.load_model('models:/{registered.get('name', 'facenet')}@champion')")


def run(args: argparse.Namespace) -> int:
    overrides = {"workspace": args.workspace} if args.workspace else {}
    cfg = load_config(args.preset, overrides)
    prepare_process(cfg.workspace)
    from flows.train import run_in_process

    started = time.perf_counter()
    summary = run_in_process(args.preset, overrides)
    _print_summary(summary, time.perf_counter() - started)
    return 0
