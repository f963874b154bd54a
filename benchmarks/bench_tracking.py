"""MLflow tracking costs: per-step metric logging (vs a raw MlflowClient.log_batch), logging while the
server is down (buffered), replay throughput, registering a model and loading `facenet@champion`.

All against a SQLite store in a temporary workspace; the outage is an http URI on a closed port.
Each figure is the median of --repeats timed passes after a warm-up.

    .venv/bin/python benchmarks/bench_tracking.py
    .venv/bin/python benchmarks/bench_tracking.py --architectures mobilenetv2 resnet34 --image-size 140
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402

STEP_METRICS = {
    "train/loss": 0.1,
    "train/kept_triplets": 100.0,
    "train/learning_rate": 0.075,
    "train/images_per_s": 9.0,
}


def median_ms(action, calls: int, repeats: int) -> float:
    """Median over repeats of the mean milliseconds per call."""
    action(0)
    runs = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for index in range(calls):
            action(repeat * calls + index + 1)
        runs.append((time.perf_counter() - start) * 1000 / calls)
    return statistics.median(runs)


def closed_port_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def bench_logging(config, tmp: Path, calls: int, repeats: int) -> dict[str, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from facenet_core.tracking.metrics import log_step_metrics, replay_metrics
    from facenet_core.tracking.runs import open_run
    from facenet_core.tracking.uri import resolve_tracking

    uri, _ = resolve_tracking(config)
    run_id = open_run(config, "bench")
    client = MlflowClient(uri)
    run_dir = tmp / "runs" / "bench"

    def raw(step: int) -> None:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in STEP_METRICS.items()])

    def ours(step: int) -> None:
        log_step_metrics(run_id, STEP_METRICS, step, run_dir=run_dir, tracking_uri=uri)

    dead = closed_port_uri()
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    outage_dir = tmp / "runs" / "outage"

    def buffered(step: int) -> None:
        log_step_metrics(run_id, STEP_METRICS, step, run_dir=outage_dir, tracking_uri=dead)

    figures = {
        "raw_log_batch_ms": median_ms(raw, calls, repeats),
        "log_step_metrics_ms": median_ms(ours, calls, repeats),
        "buffered_during_outage_ms": median_ms(buffered, calls, repeats),
    }
    start = time.perf_counter()
    replayed = replay_metrics(outage_dir, run_id, tracking_uri=uri)
    figures["replay_records_per_s"] = replayed / (time.perf_counter() - start)
    figures["replayed_records"] = replayed
    return figures


def bench_registry(config, tmp: Path, architecture: str, image_size: int, repeats: int) -> dict[str, float]:
    import mlflow.pyfunc

    from facenet_core.models import create_model
    from facenet_core.tracking.modelpack import photo_example
    from facenet_core.tracking.registry import register_best
    from facenet_core.tracking.runs import open_run
    from facenet_core.train.checkpoints import save_checkpoint

    config = config.model_copy(update={"model_architecture": architecture, "image_size": image_size})
    model = create_model(architecture, config.embedding_dimension)
    checkpoint = save_checkpoint(
        tmp / f"{architecture}.pt",
        {
            "epoch": 0,
            "embedding_dimension": config.embedding_dimension,
            "batch_size_training": config.batch_size,
            "model_state_dict": model.state_dict(),
            "model_architecture": architecture,
            "optimizer_model_state_dict": {},
            "best_distance_threshold": 1.0,
            "image_size": image_size,
        },
    )
    register_times, load_times = [], []
    for repeat in range(repeats + 1):
        run_id = open_run(config, f"{architecture}-{repeat}")
        metrics = {"accuracy": 0.5 + repeat / 100, "best_distance_threshold": 1.0}
        start = time.perf_counter()
        register_best(config, run_id, checkpoint, metrics, "f" * 64)
        register_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        embedder = mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}@champion")
        load_times.append(time.perf_counter() - start)
    embedder.predict(photo_example())
    return {
        "register_s": statistics.median(register_times[1:]),
        "load_champion_pyfunc_s": statistics.median(load_times[1:]),
        "checkpoint_mb": checkpoint.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="logging calls per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    parser.add_argument("--architectures", nargs="+", default=["mobilenetv2"], help="models to register")
    parser.add_argument("--image-size", "--image_size", type=int, default=32, help="model input size")
    args = parser.parse_args()
    disable_telemetry()
    from facenet_core.config.schema import Config, EvalSet

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = Config(
            workspace=str(tmp / "workspace"),
            embedding_dimension=128,
            eval_sets=[EvalSet(name="lfw", root=str(tmp), pairs=str(tmp / "pairs.txt"))],
        )
        results["logging"] = bench_logging(config, tmp, args.calls, args.repeats)
        for architecture in args.architectures:
            results[architecture] = bench_registry(config, tmp, architecture, args.image_size, args.repeats)
    print(f"{'figure':<40} {'value':>10}")
    for group, figures in results.items():
        for name, value in figures.items():
            print(f"{group + '/' + name:<40} {value:>10.2f}")
    logging_figures = results["logging"]
    ratio = logging_figures["log_step_metrics_ms"] / logging_figures["raw_log_batch_ms"]
    print(f"{'log_step_metrics vs raw log_batch':<40} {ratio:>9.2f}x")
    results["args"] = vars(args)
    out = atomic_write_json(REPO / "benchmarks" / "results" / "tracking.json", results)
    print(f"results -> {out}")


if __name__ == "__main__":
    main()
