"""`facenet mlflow-replay`: log the metrics buffered during an MLflow outage into their run."""

from __future__ import annotations

import argparse

from facenet_core.config.loading import load_config
from flows.cli.args import add_config_arguments, add_flag, overrides_from_args

FIELDS = ["workspace", "run_name", "mlflow_tracking_uri"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mlflow-replay",
        help="log metrics buffered while MLflow was unreachable",
        description=(
            "When the tracking server is unreachable during training, metrics and report artifacts are "
            "buffered in <workspace>/runs/<run_name>/mlflow-buffer.jsonl. This logs them into the MLflow "
            "run tagged facenet.run_key=<run_name> (or --run_id), with their original steps and times, "
            "and removes the buffer. The next metric the training logs to that run once MLflow is back does the "
            "same automatically."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", default=None, help="YAML preset the run was trained with")
    add_flag(parser, "run_id", default=None, help="MLflow run id; found by run_name when omitted")
    add_config_arguments(parser, fields=FIELDS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.preset, overrides_from_args(args))  # before the heavy imports: errors at once
    from mlflow import MlflowClient

    from facenet_core.tracking.metrics import buffer_path, replay_metrics
    from facenet_core.tracking.runs import find_run_anywhere
    from facenet_core.tracking.uri import configure_tracking
    from facenet_core.workspace import Workspace

    if not config.run_name:
        raise ValueError("--run_name is required: the run key whose folder holds mlflow-buffer.jsonl")
    workspace = Workspace.from_config(config)
    run_dir = workspace.run_dir(config.run_name)
    if not buffer_path(run_dir).exists():
        print(f"nothing to replay: {buffer_path(run_dir)} does not exist")
        return 0
    uri, _ = configure_tracking(config, workspace)
    run_id = args.run_id
    if run_id is None:
        found = find_run_anywhere(MlflowClient(uri), config.run_name)
        if found is None:
            raise ValueError(
                f"no MLflow run tagged facenet.run_key={config.run_name} in {uri}; pass --run_id, or rerun "
                "the training flow (it opens the run and replays the buffer)"
            )
        run_id = found.info.run_id
    count = replay_metrics(run_dir, run_id, tracking_uri=uri)
    print(f"replayed {count} buffered records from {run_dir} into MLflow run {run_id} at {uri}")
    return 0
