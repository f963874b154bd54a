"""DDP on CPU: 2 gloo ranks must train exactly like one process on the same global batches."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facenet_core.train.step import train_step

from .ddp_equivalence_data import STEP_OPTIONS, global_batches, tiny_model

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "weights.pt"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_equivalence_worker.py"),
        str(out),
    ]
    subprocess.run(command, check=True, cwd=HERE, timeout=300)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def single_process_weights():
    from facenet_core.train.optim import make_optimizer

    model = tiny_model()
    optimizer = make_optimizer("sgd", model.parameters(), 0.5)
    kept = []
    for batch in global_batches():
        stats = train_step(model, optimizer, None, batch, STEP_OPTIONS, torch.device("cpu"))
        kept.append(int(stats[1]))
    assert all(0 < k < 8 for k in kept)
    return model.state_dict()


def _max_difference(a, b):
    return max((a[key] - b[key]).abs().max().item() for key in a)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "matches"), [("correct", True), ("unsynchronised", False), ("per_rank_normalised", False)]
)
def test_two_gloo_ranks_equal_one_process(two_rank_results, single_process_weights, mode, matches):
    initial = tiny_model().state_dict()
    assert _max_difference(single_process_weights, initial) > 1e-2
    difference = _max_difference(two_rank_results[mode], single_process_weights)
    assert (difference < 1e-5) is matches, f"{mode}: max weight difference {difference:g}"
