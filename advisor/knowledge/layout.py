"""Where a model's parameters sit: one record per parameter tensor, with its shape and role.

The memory model (:meth:`advisor.knowledge.optimizers.OptimizerInfo.memory_bytes`) and
Muon's two-optimizer split need more than a parameter count: Adafactor's state depends on
each tensor's shape, Muon takes only *hidden* 2-D weights. A role is one of:

- ``hidden`` — the 2-D weight of a linear layer between two others (Muon's share);
- ``input`` — the 2-D weight of the first linear layer, which reads the raw input;
- ``head`` — the 2-D weight of the last linear layer, which writes the output;
- ``embedding`` — an embedding table (``nn.Embedding``, ``nn.EmbeddingBag``);
- ``vector`` — biases, normalization gains, anything of fewer than two dimensions;
- ``other`` — convolution kernels and any other tensor.

Muon's convention (Jordan et al. 2024; the KellerJordan/Muon README: "embeddings,
classifier heads, and hidden gains/biases should be optimized using standard AdamW"; for
a ConvNet, every filter "except the first one") puts ``hidden`` under Muon and the rest
under AdamW. :func:`advisor.train.layout.model_layout` measures a layout from a model;
:meth:`ParamLayout.assumed` makes one from a parameter count when no model is at hand.

>>> layout = ParamLayout.assumed(3 * 1024 * 1024 + 10, hidden_share=0.7)
>>> [p.role for p in layout.params], layout.hidden_share
(['hidden', 'other', 'vector'], 0.6667)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from advisor.core.errors import InvalidValueError

ROLES = ("hidden", "input", "head", "embedding", "vector", "other")
#: Without a model, parameters are taken to sit in square matrices of this width: the
#: width of a small transformer (BERT-large, GPT-2 medium). Adafactor's factored state is
#: then ``2 / 1024`` of the weights (Shazeer & Stern 2018, Sec. 3).
ASSUMED_WIDTH = 1024


@dataclass(frozen=True)
class ParamInfo:
    """A parameter tensor: its name in ``model.named_parameters()``, shape and role.

    ``copies`` > 1 stands for that many equal tensors (an assumed layout of a huge model).
    """

    name: str
    shape: tuple[int, ...]
    role: str
    copies: int = 1

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidValueError(
                f"a parameter role is one of {', '.join(ROLES)}; got {self.role!r}."
            )

    @property
    def size(self) -> int:
        """Numbers in one tensor."""
        return math.prod(self.shape)

    @property
    def numel(self) -> int:
        """Numbers in all ``copies``."""
        return self.size * self.copies

    @property
    def hidden(self) -> bool:
        return self.role == "hidden"


@dataclass(frozen=True)
class ParamLayout:
    """A model's parameter tensors; ``assumed_layout`` when made from a count, not measured."""

    params: tuple[ParamInfo, ...]
    assumed_layout: bool = False

    @classmethod
    def assumed(cls, count: int, hidden_share: float | None = None) -> ParamLayout:
        """``count`` parameters in ``ASSUMED_WIDTH``-square matrices plus one vector.

        A ``hidden_share`` (0..1) of the matrices is hidden; without it none is, so that
        Muon's memory is never under-estimated (its non-hidden part takes AdamW's state).
        """
        if count < 0:
            raise InvalidValueError(f"a parameter count is >= 0, got {count}.")
        shape = (ASSUMED_WIDTH, ASSUMED_WIDTH)
        matrices, rest = divmod(int(count), ASSUMED_WIDTH * ASSUMED_WIDTH)
        hidden = round(matrices * hidden_share) if hidden_share is not None else 0
        params = [
            ParamInfo(f"{n} x {role} matrix", shape, role, copies=n)
            for role, n in (("hidden", hidden), ("other", matrices - hidden))
            if n
        ]
        if rest:
            params.append(ParamInfo("vector", (rest,), "vector"))
        return cls(tuple(params), assumed_layout=True)

    @property
    def total(self) -> int:
        return sum(p.numel for p in self.params)

    def count(self, *roles: str) -> int:
        """Parameters (numbers, not tensors) in tensors of these roles."""
        return sum(p.numel for p in self.params if p.role in roles)

    def share(self, *roles: str) -> float | None:
        """The share of all parameters in tensors of these roles (4 digits); None if empty."""
        total = self.total
        return None if total == 0 else float(f"{self.count(*roles) / total:.4g}")

    @property
    def hidden_share(self) -> float | None:
        return self.share("hidden")

    @property
    def embedding_share(self) -> float | None:
        return self.share("embedding")

    def names(self, *roles: str) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.role in roles)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per role, the tensors' names and the parameters they hold."""
        return {
            "assumed": self.assumed_layout,
            "roles": {
                role: {"tensors": list(self.names(role)), "params": self.count(role)}
                for role in ROLES
                if self.names(role)
            },
        }
