"""The minibatch order shared by every trainer: same data seed → same batches.

An epoch visits the training set in the order of a permutation drawn by a CPU
``torch.Generator`` seeded from ``(data_seed, epoch)``, cut into consecutive batches of
``batch_size``; the last, partial batch is kept (like ``DataLoader(shuffle=True,
drop_last=False)``). The permutation is drawn on the CPU so that it does not depend on the
device, then moved there.

>>> perm = epoch_permutation(10, data_seed=0, epoch=1)
>>> sorted(perm.tolist()) == list(range(10))
True
>>> batch_bounds(10, 4)
[(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from advisor.core.checks import positive_int
from advisor.core.errors import InvalidValueError

# Large odd multiplier: distinct (data_seed, epoch) pairs give distinct generator seeds.
_EPOCH_STRIDE = 1_000_003


def epoch_seed(data_seed: int, epoch: int) -> int:
    """The generator seed of ``epoch`` (1-based) under ``data_seed``."""
    return (int(data_seed) * _EPOCH_STRIDE + int(epoch)) % (2**63 - 1)


def epoch_permutation(
    n: int, *, data_seed: int, epoch: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The order (int64 ``[n]``) in which ``epoch`` visits ``n`` training samples."""
    if n < 1:
        raise InvalidValueError(f"the training set must hold at least one sample, got {n}.")
    generator = torch.Generator(device="cpu")
    generator.manual_seed(epoch_seed(data_seed, epoch))
    return torch.randperm(n, generator=generator).to(device)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch over ``n`` samples; the last batch may be smaller."""
    positive_int("batch_size", batch_size)
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Number of optimizer steps per epoch (``ceil(n / batch_size)``)."""
    return len(batch_bounds(n, batch_size))


def minibatches(n: int, batch_size: int, seed: int, count: int) -> Iterator[torch.Tensor]:
    """Row indices of ``count`` full minibatches, epoch after epoch, in the trainers' order
    (:func:`epoch_permutation`); a partial last batch is skipped unless it is the only one.

    >>> [len(b) for b in minibatches(5, 2, seed=0, count=3)]  # the partial batch of 1 is skipped
    [2, 2, 2]
    """
    bounds = batch_bounds(n, batch_size)
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < batch_size:
        bounds = bounds[:-1]
    done, epoch = 0, 1
    while done < count:
        perm = epoch_permutation(n, data_seed=seed, epoch=epoch)
        for start, stop in bounds[: count - done]:
            yield perm[start:stop]
        done += min(len(bounds), count - done)
        epoch += 1
