"""What an adapter is: how one layer kind's weight gradient is written as G = AᵀΔ."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LayerAdapter:
    """Turns a layer's input and output adjoint into the rows of A and Δ.

    Rows are grouped per sample: ``input_rows`` returns ``(n, R, n_in)`` and ``output_rows``
    ``(n, R, n_out)`` for ``n`` samples, where ``R`` is the number of times each sample uses the
    weight in this call (1 for a plain Linear, tokens/time points for a token-wise Linear,
    output positions for a convolution). The weight's gradient, reshaped to ``(n_out, n_in)``,
    is then ``Σ_rows Δᵀ A``. The recorder hands the adapter tensors with the sample axis first
    (it moves the axis given by ``batch_dim``), already cast to the dtype the layer computed in.
    """

    #: the parameter whose gradient is AᵀΔ
    weight_name = "weight"
    #: True when the layer itself requires samples on dim 0 (convolutions): another sample axis
    #: is refused instead of moved
    batch_first_only = False

    def applies(self, module: nn.Module) -> bool:
        """False for configurations this adapter cannot express (they use the generic path)."""
        return True

    def why_not(self, module: nn.Module) -> str:
        """Why :meth:`applies` is False (for ``autospec.check``)."""
        return "configuration not expressible as AᵀΔ"

    def weight_shape(self, module: nn.Module) -> tuple[int, int]:
        w = getattr(module, self.weight_name)
        return int(w.shape[0]), int(w[0].numel())

    def input_problem(self, module: nn.Module, x: torch.Tensor) -> str | None:
        """Why this call's input has no usable sample axis, or None."""
        return None if x.dim() >= 2 else f"its input has shape {tuple(x.shape)}: no sample axis"

    def input_rows(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output_rows(self, module: nn.Module, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def group_grads(
        self, module: nn.Module, x: torch.Tensor, grad: torch.Tensor, blocks: Sequence[torch.Tensor | None]
    ) -> torch.Tensor | None:
        """Optional fast route: formed per-group gradients ``(K, n_out, n_in)``.

        ``blocks`` is a list of K index tensors (samples of each group; None = all samples).
        Return None to use the row route (Σ ΔᵀA over the rows of A and Δ).
        """
        return None

    def rows_per_sample(self, module: nn.Module, grad: torch.Tensor) -> int:
        """R, from the output adjoint's shape (cheap; used to choose chunk sizes)."""
        return int(grad[0].numel() // self.weight_shape(module)[0]) if grad.shape[0] else 0
