"""MTCNN detection speed: this project's PyTorch detector vs the reference TensorFlow detect_face.py.

Both run on the same images in the same benchmark run: LFW pictures (250x250) and larger pictures
built from them (640x480, 1280x720). The reference runs in a subprocess of a throwaway venv (see
benchmarks/reference/mtcnn_reference.py for how to build it); it is skipped when that venv is
absent. Each figure is the median of --repeats timed passes after a warm-up; decoding is excluded
on both sides. One process per core, one thread each; `--processes 1 2` compares 1 and 2.

    .venv/bin/python benchmarks/bench_crop.py                     # CPU, vs reference
    .venv/bin/python benchmarks/bench_crop.py --device cuda --batch-sizes 1 64 256 --no-reference
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "reference"))
from reference_images import large_image, lfw_files, read_rgb  # noqa: E402

from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402

REFERENCE_SCRIPT = REPO / "benchmarks" / "reference" / "mtcnn_reference.py"


def make_images(lfw_root: Path, folder: Path, count: int, large_count: int) -> dict[str, list[str]]:
    """PNG files of each size class under `folder`, built deterministically from LFW."""
    files = lfw_files(lfw_root)
    picked = files[:: max(len(files) // count, 1)][:count]
    sets: dict[str, list[str]] = {"250x250": [str(p) for p in picked]}
    for width, height in ((640, 480), (1280, 720)):
        paths = []
        for k in range(large_count):
            target = folder / f"{width}x{height}_{k}.png"
            Image.fromarray(large_image([read_rgb(picked[k % len(picked)])], (width, height))).save(target)
            paths.append(str(target))
        sets[f"{width}x{height}"] = paths
    return sets


def _ours_worker(paths, device, batch, repeats, barrier, queue) -> None:
    import torch

    torch.set_num_threads(1)
    from facenet_core.detect.detector import MTCNN

    detector = MTCNN(device)
    images = [read_rgb(Path(p)) for p in paths]
    detector.detect(images[:batch])
    times = []
    for _ in range(repeats):
        barrier.wait()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            detector.detect(images[i : i + batch])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    queue.put(times)


def time_ours(paths: list[str], device: str, batch: int, processes: int, repeats: int) -> float:
    """Images/s of the PyTorch detector with `processes` processes sharing the images."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    parts = [paths[i::processes] for i in range(processes)]
    workers = [
        context.Process(target=_ours_worker, args=(part, device, batch, repeats, barrier, queue)) for part in parts
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    per_repeat = [max(r[k] for r in results) for k in range(repeats)]
    return len(paths) / statistics.median(per_repeat)


def time_reference(python: str, paths: list[str], processes: int, repeats: int, folder: Path) -> float:
    """Images/s of the reference detector, `processes` subprocesses started together (one thread each)."""
    runs = []
    for i in range(processes):
        listing, out = folder / f"ref_{i}.txt", folder / f"ref_{i}.json"
        listing.write_text("\n".join(paths[i::processes]) + "\n")
        command = [python, str(REFERENCE_SCRIPT), "bench", "--list", str(listing), "--out", str(out)]
        command += ["--threads", "1", "--repeats", str(repeats)]
        runs.append((subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL), out))
    results = []
    for proc, out in runs:
        if proc.wait() != 0:
            raise RuntimeError(f"reference run failed (exit {proc.returncode}); check the venv at {python}")
        results.append(json.loads(out.read_text())["seconds"])
    per_repeat = [max(r[k] for r in results) for k in range(repeats)]
    return len(paths) / statistics.median(per_repeat)


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--count", type=int, default=64, help="LFW images timed")
    parser.add_argument("--large-count", type=int, default=8, help="images per larger size")
    parser.add_argument("--sizes", nargs="+", default=["250x250", "640x480", "1280x720"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-python", default="/tmp/tfref/bin/python")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_crop.json"))
    args = parser.parse_args()
    use_reference = not args.no_reference and Path(args.reference_python).exists()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sets = make_images(Path(args.lfw), folder, args.count, args.large_count)
        for size in args.sizes:
            paths = sets[size]
            for processes in args.processes:
                reference = None
                if use_reference:
                    reference = time_reference(args.reference_python, paths, processes, args.repeats, folder)
                rows.append(_row(size, "reference TF", processes, 1, reference, reference))
                for batch in args.batch_sizes:
                    ours = time_ours(paths, args.device, batch, processes, args.repeats)
                    rows.append(_row(size, f"ours {args.device}", processes, batch, ours, reference))
                    _print(rows[-1])
    meta = {"device": args.device, "repeats": args.repeats, "cpu_count": multiprocessing.cpu_count()}
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    print(f"\n{'size':>9} {'implementation':<15} {'procs':>5} {'batch':>5} {'img/s':>8} {'per proc':>8} {'ratio':>6}")
    for row in rows:
        _print(row)


def _row(size, name, processes, batch, rate, reference) -> dict:
    ratio = rate / reference if rate is not None and reference else None
    return {"size": size, "impl": name, "processes": processes, "batch": batch, "images_per_s": rate, "ratio": ratio}


def _print(row: dict) -> None:
    rate = row["images_per_s"]
    per = f"{rate / row['processes']:8.1f}" if rate else "       -"
    ratio = f"{row['ratio']:6.2f}" if row["ratio"] else "     -"
    shown = f"{rate:8.1f}" if rate else "       -"
    print(f"{row['size']:>9} {row['impl']:<15} {row['processes']:>5} {row['batch']:>5} {shown} {per} {ratio}")


if __name__ == "__main__":
    main()
