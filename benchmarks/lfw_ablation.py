"""Mining ablation on LFW View 1: the seed's triplets against online mining, with and without alignment.

Every method trains with `deployments/lfw_view1.yaml` (ResNet-18, 64 px, from scratch on the people
of peopleDevTrain, 8 epochs x 100 steps x 180 images: 144,000 images seen), changing only how a
step's 180 images are drawn and mined and, for `+aligned`, the crop. Each method is its own run in
one workspace, so the crops, the manifest and the evaluation sets are shared.

    .venv/bin/python benchmarks/lfw_ablation.py run batch_hard [--workspace ./workspace-lfw]
    .venv/bin/python benchmarks/lfw_ablation.py report [--workspace ./workspace-lfw]

`run` trains one method (a finished run is Cached); `report` reads every run of the workspace
trained with this recipe, prints one Markdown table (last and best epoch of DevTest accuracy and AUC,
the View 2 DevTest-people accuracy, training minutes, images per second) and draws
benchmarks/figures/lfw_view1_ablation.png (accuracy and AUC per epoch, one line per method).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from facenet_core.env import disable_telemetry

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "deployments" / "lfw_view1.yaml"
FIGURE = REPO / "benchmarks" / "figures" / "lfw_view1_ablation.png"
SELECTION_SET = "lfw-view1"
SECOND_SET = "lfw-view2-devtest-people"

# 180 images per step in every method: 60 triplets x 3, or 45 identities x 4 images.
PK = {"sampling": "pk", "pk_identities": 45, "pk_images": 4}
METHODS: dict[str, dict[str, object]] = {
    "seed": {},
    "batch_hard": {**PK, "mining": "batch_hard"},
    "batch_semihard": {**PK, "mining": "batch_semihard"},
    "batch_all": {**PK, "mining": "batch_all"},
}
METHODS.update({f"{name}+aligned": {**values, "crop": "aligned"} for name, values in list(METHODS.items())})


def method_of(config: dict) -> str:
    """The method name a run's saved config.yaml corresponds to."""
    sampling, mining = config.get("sampling", "triplets"), config.get("mining", "seed")
    name = "seed" if sampling == "triplets" and mining == "seed" else mining
    if sampling == "triplets" and mining != "seed":
        name = f"{mining} (triplets)"
    return f"{name}+aligned" if config.get("crop") == "aligned" else name


def run_method(name: str, workspace: Path) -> None:
    """Train one method with the preset (in this process: Prefect and MLflow embedded)."""
    from flows.train import run_in_process

    overrides = {"workspace": str(workspace), **METHODS[name]}
    result = run_in_process(PRESET, overrides)
    print(json.dumps({"method": name, "run_key": result["run_key"], "stages": result["stage_states"]}, indent=1))


def epoch_rows(run_dir: Path) -> pd.DataFrame:
    """Per epoch: both sets' accuracy and AUC, and the training seconds and images of that epoch."""
    table = pd.read_parquet(run_dir / "reports" / "metrics.parquet")
    wide = table.pivot_table(index="epoch", columns="set", values=["accuracy", "roc_auc"])
    wide.columns = [f"{metric}/{set_name}" for metric, set_name in wide.columns]
    seconds, images = {}, {}
    for summary in sorted((run_dir / "checkpoints").glob("epoch_*.json")):
        values = json.loads(summary.read_text())
        seconds[values["epoch"]] = values["seconds"]
        images[values["epoch"]] = values.get("images", 3 * values.get("triplets", 0))
    wide["seconds"] = pd.Series(seconds)
    wide["images"] = pd.Series(images)
    return wide.reset_index()


def recipe_runs(workspace: Path) -> dict[str, pd.DataFrame]:
    """The runs of the workspace trained with the preset's recipe, by method."""
    preset = yaml.safe_load(PRESET.read_text())
    same = ("model_architecture", "image_size", "epochs", "iterations_per_epoch", "embedding_dimension")
    runs = {}
    for config_path in sorted((workspace / "runs").glob("*/config.yaml")):
        config = yaml.safe_load(config_path.read_text())
        if any(config.get(key) != preset[key] for key in same):
            continue
        if not (config_path.parent / "reports" / "metrics.parquet").is_file():
            continue
        runs[method_of(config)] = epoch_rows(config_path.parent)
    return runs


def markdown_table(runs: dict[str, pd.DataFrame]) -> str:
    """One row per method: DevTest accuracy/AUC at the last and the best epoch, View 2 subset, time."""
    lines = [
        "| method | epochs | images | training min | images/s | DevTest acc (last) | AUC (last) "
        "| best DevTest acc (epoch) | View 2 DevTest-people acc (last) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in runs.items():
        last = rows.iloc[-1]
        best = rows.loc[rows[f"accuracy/{SELECTION_SET}"].idxmax()]
        minutes = rows["seconds"].sum() / 60
        images = rows["images"].sum()
        second = last.get(f"accuracy/{SECOND_SET}", float("nan"))
        lines.append(
            f"| {name} | {len(rows)} | {images:,.0f} | {minutes:.1f} | {images / max(rows['seconds'].sum(), 1e-9):.0f} "
            f"| {last[f'accuracy/{SELECTION_SET}']:.1%} | {last[f'roc_auc/{SELECTION_SET}']:.3f} "
            f"| {best[f'accuracy/{SELECTION_SET}']:.1%} ({int(best['epoch'])}) | {second:.1%} |"
        )
    return "\n".join(lines)


def plot(runs: dict[str, pd.DataFrame], path: Path) -> None:
    """DevTest accuracy and AUC per epoch, one line per method."""
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    for index, (metric, label) in enumerate((("accuracy", "DevTest accuracy"), ("roc_auc", "DevTest AUC"))):
        ax = fig.add_subplot(1, 2, index + 1)
        for name, rows in runs.items():
            style = "--" if name.endswith("+aligned") else "-"
            ax.plot(rows["epoch"], rows[f"{metric}/{SELECTION_SET}"], style, marker="o", label=name)
        ax.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch (LFW View 1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("method", nargs="?", choices=sorted(METHODS))
    parser.add_argument("--workspace", type=Path, default=REPO / "workspace-lfw")
    args = parser.parse_args()
    if args.action == "run":
        if args.method is None:
            parser.error("run needs a method")
        run_method(args.method, args.workspace.resolve())
        return
    runs = recipe_runs(args.workspace.resolve())
    print(markdown_table(runs))
    plot(runs, FIGURE)
    print(f"figure: {FIGURE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
