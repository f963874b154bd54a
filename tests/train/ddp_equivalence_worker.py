"""Run by test_distributed.py under torchrun: the same tiny training as 2 gloo ranks, three ways.

correct: DDP + the engine's train_step (global loss normalisation).
unsynchronised: the engine's train_step without DDP, so gradients are never averaged.
per_rank_normalised: DDP with each rank dividing by its own kept count.
<mining> and <mining>/per_rank_normalised: the same two with each online miner on labelled batches.
Rank 0 saves {mode: state_dict} to the path given as the only argument.
"""

import dataclasses
import sys

import torch
import torch.distributed as dist
from ddp_equivalence_data import (
    STEP_OPTIONS,
    global_batches,
    labelled_global_batches,
    mined_options,
    rank_rows,
    tiny_model,
)
from torch.nn.parallel import DistributedDataParallel

from facenet_core.train.loss import split_embeddings, triplet_terms
from facenet_core.train.mining import MINERS, mine
from facenet_core.train.optim import make_optimizer
from facenet_core.train.step import train_step


def per_rank_normalised_step(model, optimizer, batch):
    images = torch.cat(batch)
    terms = triplet_terms(*split_embeddings(model(images)), STEP_OPTIONS.margin, STEP_OPTIONS.semihard)
    optimizer.zero_grad(set_to_none=True)
    terms.loss().backward()
    optimizer.step()


def train_mined(mining, per_rank_normalised, rank, world_size):
    model = DistributedDataParallel(tiny_model())
    optimizer = make_optimizer("sgd", model.parameters(), 0.5)
    options = dataclasses.replace(mined_options(mining), world_size=world_size)
    for images, labels in labelled_global_batches():
        share = len(labels) // world_size
        rows = slice(rank * share, (rank + 1) * share)
        if per_rank_normalised:
            terms = mine(model(images[rows]), labels[rows], mining, options.margin, options.distance)
            optimizer.zero_grad(set_to_none=True)
            terms.loss().backward()
            optimizer.step()
        else:
            train_step(model, optimizer, None, (images[rows], labels[rows]), options, torch.device("cpu"))
    return model.module.state_dict()


def train(mode, rank, world_size):
    model = tiny_model()
    if mode != "unsynchronised":
        model = DistributedDataParallel(model)
    optimizer = make_optimizer("sgd", model.parameters(), 0.5)
    options = dataclasses.replace(STEP_OPTIONS, world_size=world_size)
    for batch in global_batches():
        share = rank_rows(batch, rank, world_size)
        if mode == "per_rank_normalised":
            per_rank_normalised_step(model, optimizer, share)
        else:
            train_step(model, optimizer, None, share, options, torch.device("cpu"))
    return getattr(model, "module", model).state_dict()


def main(out_path):
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    results = {mode: train(mode, rank, world_size) for mode in ("correct", "unsynchronised", "per_rank_normalised")}
    for mining in MINERS:
        results[mining] = train_mined(mining, False, rank, world_size)
        results[f"{mining}/per_rank_normalised"] = train_mined(mining, True, rank, world_size)
    if rank == 0:
        torch.save(results, out_path)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
