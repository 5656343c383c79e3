"""BERT-style Transformer encoder over (T, F) sequences (ICA time courses: T time points, F components).

``embed`` (Linear F -> d_model, per token) + ``positions`` (learned) -> ``blocks.0 ... blocks.k``
(:class:`autospec.nn.TransformerEncoderLayer`, post-norm by default) -> classify: mean over time,
Linear ``head``; autoencode: per-token Linear ``decoder`` d_model -> F.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import InputError
from ..nn.attention import TransformerEncoderLayer
from ..nn.positions import LearnedPositions
from .registry import BatteryModel, check_input, equal_widths, n_logits, register


class BertEncoder(BatteryModel):
    """See the module docstring."""

    def __init__(
        self,
        task: str,
        input_shape: tuple[int, int],
        n_classes: int | None,
        *,
        d_model: int,
        n_layers: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        activation: str,
        norm_first: bool,
        max_len: int,
    ) -> None:
        super().__init__()
        self.in_shape = input_shape
        self.task = task
        n_features = input_shape[1]
        self.embed = nn.Linear(n_features, d_model)
        self.positions = LearnedPositions(max_len, d_model)
        self.blocks = nn.ModuleList(
            TransformerEncoderLayer(
                d_model,
                nhead,
                dim_feedforward,
                dropout=dropout,
                activation=activation,
                batch_first=True,
                norm_first=norm_first,
            )
            for _ in range(n_layers)
        )
        if task == "classify":
            self.head = nn.Linear(d_model, n_logits(n_classes, "bert"))
        else:
            self.decoder = nn.Linear(d_model, n_features)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.in_shape, "bert")
        h = self.positions(self.embed(x))
        for block in self.blocks:
            h = block(h)
        y: Tensor = self.head(h.mean(dim=1)) if self.task == "classify" else self.decoder(h)
        return y


@register("bert")
def build_bert(
    task: str,
    input_shape: tuple[int, ...],
    n_classes: int | None,
    hidden: tuple[int, ...],
    activation: str,
    *,
    nhead: int = 4,
    dim_feedforward: int | None = None,
    dropout: float = 0.0,
    norm_first: bool = False,
    max_len: int | None = None,
) -> BertEncoder:
    """d_model = hidden[0] (all widths equal), len(hidden) blocks; ``activation`` is the FFN's.

    ``dim_feedforward`` defaults to 2 * d_model, ``max_len`` (position table) to T.
    """
    if len(input_shape) != 2:
        raise InputError(f"bert: input_shape must be (T, F) (time points, features), got {input_shape}")
    if not hidden:
        raise InputError("bert: hidden must name at least one layer width (d_model)")
    d_model = equal_widths(hidden, "bert", "d_model")
    if isinstance(nhead, bool) or not isinstance(nhead, int) or nhead < 1 or d_model % nhead:
        raise InputError(f"bert: d_model={d_model} (hidden[0]) must be divisible by nhead={nhead!r}")
    dim_ff = 2 * d_model if dim_feedforward is None else dim_feedforward
    if isinstance(dim_ff, bool) or not isinstance(dim_ff, int) or dim_ff < 1:
        raise InputError(f"bert: dim_feedforward must be a positive int, got {dim_feedforward!r}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"bert: dropout must be in [0, 1), got {dropout!r}")
    t = input_shape[0]
    max_len = t if max_len is None else max_len
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < t:
        raise InputError(f"bert: max_len={max_len!r} must be an int >= T={t}")
    return BertEncoder(
        task,
        input_shape,
        n_classes,
        d_model=d_model,
        n_layers=len(hidden),
        nhead=nhead,
        dim_feedforward=dim_ff,
        dropout=dropout,
        activation=activation,
        norm_first=norm_first,
        max_len=max_len,
    )
