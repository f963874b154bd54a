"""DDP on CPU: 2 gloo ranks must train exactly like one process on the same global batches.

With online mining each rank mines its own share of the batch (an anchor's candidates are the images
on its rank), so the single process that 2 ranks equal mines each share apart and divides the summed
hinges by the summed divisors. One process mining the concatenated batch differs for every miner:
it offers each anchor the other rank's images as negatives (and as positives where an identity spans
both shares).
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facenet_core.train.mining import MINERS, mine
from facenet_core.train.step import train_step

from .ddp_equivalence_data import STEP_OPTIONS, global_batches, labelled_global_batches, mined_options, tiny_model

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


def _mined_per_share_weights(mining, world_size=2, concatenated=False):
    """One process: each share mined apart (or the whole batch at once), hinges summed over the shares
    and divided by the summed divisors."""
    from facenet_core.train.optim import make_optimizer

    model = tiny_model()
    optimizer = make_optimizer("sgd", model.parameters(), 0.5)
    margin = mined_options(mining).margin
    for images, labels in labelled_global_batches():
        shares = 1 if concatenated else world_size
        terms = [
            mine(model(part), part_labels, mining, margin, "euclidean")
            for part, part_labels in zip(images.chunk(shares), labels.chunk(shares), strict=True)
        ]
        assert all(int(t.active) > 0 for t in terms)
        loss = sum(t.hinge_sum for t in terms) / sum(t.divisor for t in terms).clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("mining", list(MINERS))
def test_two_gloo_ranks_mine_their_shares_and_normalise_globally(two_rank_results, mining):
    single = _mined_per_share_weights(mining)
    assert _max_difference(single, tiny_model().state_dict()) > 1e-2
    assert _max_difference(two_rank_results[mining], single) < 1e-5
    assert _max_difference(two_rank_results[f"{mining}/per_rank_normalised"], single) > 1e-4
    assert _max_difference(_mined_per_share_weights(mining, concatenated=True), single) > 1e-4
