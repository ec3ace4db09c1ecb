"""Torch twins of hwprune's numpy reference models, shared by the torch adapter and
policy tests (import only after ``pytest.importorskip("torch")``)."""

from __future__ import annotations

import torch

nn = torch.nn

EXAMPLE = torch.zeros(1, 1, 8, 8)
"""One digits image: the example input the twins are traced with."""


class CNN(nn.Module):
    """digits-cnn's architecture in torch (the same layer names)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def torch_copy(numpy_model, module):
    """``module`` with ``numpy_model``'s weights and biases, by layer name."""
    with torch.no_grad():
        for lay in numpy_model.prunable():
            mod = module.get_submodule(lay.name)
            mod.weight.copy_(torch.from_numpy(lay.weight))
            mod.bias.copy_(torch.from_numpy(lay.bias))
    return module
