"""MTCNN detection speed: this project's PyTorch detector vs the reference TensorFlow detect_face.py.

Both run on the same images in the same benchmark run: LFW pictures (250x250) and larger pictures
built from them (640x480, 1280x720). The reference runs in subprocesses of a throwaway venv (see
benchmarks/reference/mtcnn_reference.py for how to build it); it is skipped when that venv is
absent. Every process is started once, loads its images and warms up; then rounds alternate one
reference pass with one pass of ours per batch size, so both see the same machine load (the CPU
may be shared). Figures are medians over rounds; the ratio is the median of per-round ratios.
Decoding is excluded on both sides; one thread per process, `--processes 1 2` compares 1 and 2.

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
    """Image files of each size class, built deterministically from LFW (larger ones as PNG in `folder`)."""
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


def _ours_server(paths: list[str], device: str, connection) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from facenet_core.detect.detector import MTCNN
    from facenet_core.memory import keep_freed_memory

    keep_freed_memory()  # as the crop stage does
    detector = MTCNN(device)
    images = [read_rgb(Path(p)) for p in paths]
    detector.detect(images[:4])
    connection.send("ready")
    while (batch := connection.recv()) is not None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            detector.detect(images[i : i + batch])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        connection.send(time.perf_counter() - start)


class OursPool:
    """`processes` warm detector processes, each holding its share of the images."""

    def __init__(self, paths: list[str], device: str, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.links, self.procs = [], []
        for i in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_ours_server, args=(paths[i::processes], device, child))
            proc.start()
            self.links.append(parent)
            self.procs.append(proc)
        for link in self.links:
            link.recv()

    def run(self, batch: int) -> float:
        for link in self.links:
            link.send(batch)
        return max(link.recv() for link in self.links)

    def close(self) -> None:
        for link in self.links:
            link.send(None)
        for proc in self.procs:
            proc.join()


class ReferencePool:
    """`processes` warm reference subprocesses (one thread each), each holding its share of the images."""

    def __init__(self, python: str, paths: list[str], processes: int, folder: Path) -> None:
        self.procs = []
        for i in range(processes):
            listing = folder / f"ref_{processes}_{i}.txt"
            listing.write_text("\n".join(paths[i::processes]) + "\n")
            command = [python, str(REFERENCE_SCRIPT), "serve", "--list", str(listing), "--threads", "1"]
            self.procs.append(
                subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
            )
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"reference process failed to start; check the venv at {python}")

    def run(self) -> float:
        for proc in self.procs:
            proc.stdin.write("run\n")
            proc.stdin.flush()
        return max(json.loads(proc.stdout.readline())["seconds"] for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait()


def measure(paths, processes, args, folder, use_reference) -> list[dict]:
    """Interleaved rounds for one image set and process count; one row per implementation/batch."""
    reference = ReferencePool(args.reference_python, paths, processes, folder) if use_reference else None
    ours = OursPool(paths, args.device, processes)
    ref_rates, rates = [], {b: [] for b in args.batch_sizes}
    try:
        for _ in range(args.repeats):
            if reference:
                ref_rates.append(len(paths) / reference.run())
            for batch in args.batch_sizes:
                rates[batch].append(len(paths) / ours.run(batch))
    finally:
        ours.close()
        if reference:
            reference.close()
    rows = []
    if ref_rates:
        rows.append({"impl": "reference TF", "batch": 1, "images_per_s": statistics.median(ref_rates), "ratio": 1.0})
    for batch, values in rates.items():
        ratio = statistics.median(v / r for v, r in zip(values, ref_rates, strict=True)) if ref_rates else None
        rows.append(
            {"impl": f"ours {args.device}", "batch": batch, "images_per_s": statistics.median(values), "ratio": ratio}
        )
    return [row | {"processes": processes, "images": len(paths)} for row in rows]


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for our detector")
    parser.add_argument("--count", type=int, default=48, help="LFW images timed")
    parser.add_argument("--large-count", type=int, default=6, help="images per larger size")
    parser.add_argument("--sizes", nargs="+", default=["250x250", "640x480", "1280x720"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--reference-python", default=str(REPO.parent / "tfref" / "bin" / "python"))
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_crop.json"))
    args = parser.parse_args()
    use_reference = not args.no_reference and Path(args.reference_python).exists()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_images(Path(args.lfw), Path(tmp), args.count, args.large_count)
        for size in args.sizes:
            for processes in args.processes:
                for row in measure(sets[size], processes, args, Path(tmp), use_reference):
                    rows.append({"size": size} | row)
                    _print(rows[-1])
    meta = {"device": args.device, "repeats": args.repeats, "cpu_count": multiprocessing.cpu_count()}
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    print(f"\n{'size':>9} {'implementation':<15} {'procs':>5} {'batch':>5} {'img/s':>8} {'per proc':>8} {'ratio':>6}")
    for row in rows:
        _print(row)


def _print(row: dict) -> None:
    rate = row["images_per_s"]
    ratio = f"{row['ratio']:6.2f}" if row["ratio"] else "     -"
    print(
        f"{row['size']:>9} {row['impl']:<15} {row['processes']:>5} {row['batch']:>5} "
        f"{rate:8.1f} {rate / row['processes']:8.1f} {ratio}"
    )


if __name__ == "__main__":
    main()
