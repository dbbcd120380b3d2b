from __future__ import annotations

import pytest
import torch
from torch import nn

from advisor.core.errors import InvalidValueError
from advisor.train.models import mlp_flops_per_sample, mnist_mlp, mnist_mlp_parameters


def test_seed_mlp_has_118282_parameters() -> None:
    model = mnist_mlp()
    assert sum(p.numel() for p in model.parameters()) == 118_282
    assert mnist_mlp_parameters() == 118_282


def test_seed_mlp_layers_and_output_shape() -> None:
    model = mnist_mlp()
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert model(torch.zeros(3, 784)).shape == (3, 10)


@pytest.mark.parametrize(("hidden", "n_features", "n_classes"), [(128, 784, 10), (32, 64, 3)])
def test_parameter_count_matches_module(hidden: int, n_features: int, n_classes: int) -> None:
    model = mnist_mlp(hidden, n_features, n_classes)
    assert sum(p.numel() for p in model.parameters()) == mnist_mlp_parameters(
        hidden, n_features, n_classes
    )


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = mnist_mlp().state_dict()
    torch.manual_seed(3)
    b = mnist_mlp().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_flops_per_sample() -> None:
    # forward 2*(784*128 + 128*128 + 128*10); backward: the same for weight gradients,
    # plus input gradients of layers 2 and 3 only
    forward = 2 * (784 * 128 + 128 * 128 + 128 * 10)
    assert mlp_flops_per_sample(backward=False) == forward == 236_032
    assert mlp_flops_per_sample() == 2 * forward + 2 * (128 * 128 + 128 * 10) == 507_392
    # 55k training samples: the 27.9 GFLOP model-epoch of the design notes
    assert 55_000 * mlp_flops_per_sample() == pytest.approx(27.9e9, rel=1e-3)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(InvalidValueError, match="hidden must be a positive whole number"):
        mnist_mlp(hidden=0)
    with pytest.raises(InvalidValueError, match="n_classes must be a positive whole number"):
        mlp_flops_per_sample(n_classes=2.5)  # type: ignore[arg-type]
