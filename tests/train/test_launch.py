"""run_train_epoch: in-process for one process, a torchrun job for several."""

import pytest
import torch

from facenet_core.config import Config
from facenet_core.train.engine import read_epoch_summary
from facenet_core.train.launch import run_train_epoch, torchrun_command


def test_torchrun_command_single_node_and_rendezvous():
    single = torchrun_command(Config(num_processes=4, batch_size=8), ["--epoch", "0"])
    assert single[1:] == [
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "4",
        "--standalone",
        "-m",
        "facenet_core.train.worker",
        "--epoch",
        "0",
    ]
    multi = torchrun_command(Config(num_processes=2, nnodes=3, rdzv_endpoint="head:29400", batch_size=8), [])
    assert multi[3:11] == [
        "--nproc_per_node",
        "2",
        "--nnodes",
        "3",
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "head:29400",
    ]
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        torchrun_command(Config(nnodes=2), [])


@pytest.mark.slow
def test_two_process_epoch_streams_metrics_and_resumes_in_one_process(tiny_config, tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    calls = []
    config = tiny_config.model_copy(update={"num_processes": 2})
    out = run_train_epoch(config, 0, tiny_dataset["triplets"][0], None, run_dir, lambda m, s: calls.append((s, m)))

    assert [step for step, _ in calls] == [1, 2]
    summary = read_epoch_summary(out)
    assert summary["world_size"] == 2 and summary["triplets"] == 8
    assert summary["kept_triplets"] == sum(m["kept_triplets"] for _, m in calls)
    saved = torch.load(out, weights_only=True)["model_state_dict"]
    assert not any(key.startswith("module.") for key in saved)

    single = run_train_epoch(tiny_config, 1, tiny_dataset["triplets"][1], run_dir / "checkpoints" / "last.pt", run_dir)
    assert read_epoch_summary(single)["world_size"] == 1
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
