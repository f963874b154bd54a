"""Checkpoints built the way the seed's code built them (wrapper attribute `model`, numpy threshold)."""

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class SeedTripletNet(nn.Module):
    """The seed's wrapper: torchvision backbone under `self.model`, bias-free head, L2 norm."""

    def __init__(self, architecture: str, embedding_dimension: int) -> None:
        super().__init__()
        if architecture == "mobilenetv2":
            self.model = torchvision.models.mobilenet_v2(weights=None)
            self.model.classifier = nn.Linear(1280, embedding_dimension, bias=False)
        else:
            self.model = torchvision.models.get_model(architecture, weights=None)
            self.model.fc = nn.Linear(self.model.fc.in_features, embedding_dimension, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(images), p=2, dim=1)


def save_seed_checkpoint(path: Path, architecture: str, embedding_dimension: int = 16, epoch: int = 4):
    """Train the wrapper one Adagrad step and torch.save the seed's dict; returns (net, optimizer)."""
    torch.manual_seed(0)
    net = SeedTripletNet(architecture, embedding_dimension)
    optimizer = torch.optim.Adagrad(
        net.parameters(), lr=0.075, lr_decay=0, initial_accumulator_value=0.1, eps=1e-10, weight_decay=1e-5
    )
    net(torch.randn(6, 3, 32, 32)).pow(2).sum().backward()
    optimizer.step()
    torch.save(
        {
            "epoch": epoch,
            "embedding_dimension": embedding_dimension,
            "batch_size_training": 544,
            "model_state_dict": net.state_dict(),
            "model_architecture": architecture,
            "optimizer_model_state_dict": optimizer.state_dict(),
            "best_distance_threshold": np.float64(1.25),
        },
        path,
    )
    return net, optimizer


def as_numpy1_pickle(path: Path) -> None:
    """Rewrite the numpy scalar's global the way numpy 1.x pickled it (numpy.core, not numpy._core)."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray\nscalar" in data
                data = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
            target.writestr(info, data)
    path.write_bytes(buffer.getvalue())
