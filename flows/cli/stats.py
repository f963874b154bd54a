"""`facenet stats MANIFEST`: per-channel RGB mean and std, as config normalize_mean/normalize_std."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from facenet_core.fileio import atomic_write_json, atomic_write_text
from flows.cli.args import add_flag, config_range, ranged


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="per-channel RGB mean/std of a manifest's images",
        description=(
            "Exact per-channel mean and population std over every pixel of the manifest's images (or of a "
            "seeded random sample of images). Writes <out>.yaml (normalize_mean/normalize_std: a preset "
            "fragment) and <out>.json (exact values, counts)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("manifest", help="manifest (.parquet) built by `facenet manifest`")
    parser.add_argument(
        "--sample", type=ranged({"ge": 1}), default=None, help="measure this many random images (none: all of them)"
    )
    parser.add_argument("--seed", type=config_range("seed"), default=0, help="seed of the random sample")
    parser.add_argument(
        "--workers", type=config_range("num_workers"), default=0, help="processes (0: one per CPU core)"
    )
    parser.add_argument("--out", default=None, help="output stem (none: <manifest stem>.stats beside the manifest)")
    add_flag(parser, "no_progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenet_core.data.stats import dataset_stats

    stats = dataset_stats(
        args.manifest, sample=args.sample, seed=args.seed, workers=args.workers, progress=not args.no_progress
    )
    manifest = Path(args.manifest)
    stem = Path(args.out) if args.out else manifest.with_name(f"{manifest.stem}.stats")
    fragment = {"normalize_mean": stats["normalize_mean"], "normalize_std": stats["normalize_std"]}
    yaml_path = atomic_write_text(stem.with_name(f"{stem.name}.yaml"), yaml.safe_dump(fragment, sort_keys=False))
    json_path = atomic_write_json(stem.with_name(f"{stem.name}.json"), stats)
    print(yaml.safe_dump(fragment, sort_keys=False), end="")
    mean = ",".join(str(v) for v in stats["normalize_mean"])
    std = ",".join(str(v) for v in stats["normalize_std"])
    print(f"# {stats['num_images']} images, {stats['num_pixels']} pixels -> {yaml_path}, {json_path}")
    print(f"# flags: --normalize_mean {mean} --normalize_std {std}")
    return 0
