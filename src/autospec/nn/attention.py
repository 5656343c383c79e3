"""Multi-head attention and a Transformer encoder layer built from called ``nn.Linear`` modules.

``torch.nn.MultiheadAttention`` keeps the query/key/value projections in one bare
``in_proj_weight`` used functionally, invisible to Linear hooks. :class:`MultiheadAttention`
computes the same function (torch's slow path) with separate ``q_proj``, ``k_proj``, ``v_proj``
and ``out_proj`` Linear modules, each called as a module on (N, L, E) tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import activation_function


def _additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """torch's convention: a bool mask is True where attention is NOT allowed; floats are added."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise ValueError(f"attention masks must be bool or floating point, got {mask.dtype}")
    return mask.to(dtype)


class MultiheadAttention(nn.Module):
    """Hookable equivalent of ``torch.nn.MultiheadAttention`` (no bias_kv, no zero-attn).

    Parameters
    ----------
    embed_dim, num_heads, bias, dropout, batch_first, kdim, vdim
        As torch (``batch_first`` defaults to True here). ``dropout`` acts on the attention
        weights in training mode only.

    Parameter names: ``q_proj.weight``/``.bias``, ``k_proj.*``, ``v_proj.*``, ``out_proj.*``; the
    first three are the row blocks [0:E], [E:2E], [2E:3E] of torch's ``in_proj_weight``/``in_proj_bias``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim={embed_dim} must be a positive multiple of num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout={dropout} must be in [0, 1)")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout = dropout
        self.batch_first = batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # torch: xavier_uniform_ on the packed (3E, E) in_proj_weight when kdim == vdim == E,
        # else on each projection; in-projection and out_proj biases start at zero.
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if self.kdim == self.embed_dim and self.vdim == self.embed_dim:
            bound = math.sqrt(6.0 / (self.embed_dim + 3 * self.embed_dim))
            for lin in projections:
                nn.init.uniform_(lin.weight, -bound, bound)
        else:
            for lin in projections:
                nn.init.xavier_uniform_(lin.weight)
        for lin in (*projections, self.out_proj):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _merged_mask(
        self,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        shape: tuple[int, int, int],
        dtype: torch.dtype,
    ) -> Tensor | None:
        """One additive mask broadcastable to (N, heads, L, S), or None; ``shape`` is (N, L, S)."""
        n, tgt_len, src_len = shape
        merged = None
        if attn_mask is not None:
            mask = _additive_mask(attn_mask, dtype)
            if mask.dim() == 2 and tuple(mask.shape) == (tgt_len, src_len):
                merged = mask.view(1, 1, tgt_len, src_len)
            elif mask.dim() == 3 and tuple(mask.shape) == (n * self.num_heads, tgt_len, src_len):
                merged = mask.view(n, self.num_heads, tgt_len, src_len)
            else:
                raise ValueError(
                    f"MultiheadAttention: attn_mask shape {tuple(attn_mask.shape)} is neither "
                    f"{(tgt_len, src_len)} nor {(n * self.num_heads, tgt_len, src_len)}"
                )
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (n, src_len):
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask shape {tuple(key_padding_mask.shape)}, expected {(n, src_len)}"
                )
            kpm = _additive_mask(key_padding_mask, dtype).view(n, 1, 1, src_len)
            merged = kpm if merged is None else merged + kpm
        return merged

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``(out, weights)``: out (N, L, E) (batch_first); weights (N, L, S) averaged over
        heads, or (N, heads, L, S) with ``average_attn_weights=False``, or None."""
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            raise ValueError("MultiheadAttention: query, key and value must be 3-D (batch, seq, features)")
        n, tgt_len, _ = query.shape
        src_len = key.shape[1]
        if key.shape[:2] != value.shape[:2] or key.shape[0] != n:
            raise ValueError(
                f"MultiheadAttention: query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                f"{tuple(value.shape)} disagree on batch or source length"
            )
        h, d = self.num_heads, self.head_dim
        q = self.q_proj(query).view(n, tgt_len, h, d).transpose(1, 2)  # (N, h, L, d)
        k = self.k_proj(key).view(n, src_len, h, d).transpose(1, 2)  # (N, h, S, d)
        v = self.v_proj(value).view(n, src_len, h, d).transpose(1, 2)
        scores = (q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1)  # (N, h, L, S)
        mask = self._merged_mask(attn_mask, key_padding_mask, (n, tgt_len, src_len), scores.dtype)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        out = (weights @ v).transpose(1, 2).reshape(n, tgt_len, self.embed_dim)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(dim=1) if average_attn_weights else weights)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiheadAttention:
        """Copy of ``mha`` (same weights, dtype, device); ``in_proj_weight`` is split in three."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(
                f"MultiheadAttention.from_torch expects torch.nn.MultiheadAttention, got {type(mha).__name__}"
            )
        if mha.bias_k is not None or mha.bias_v is not None:
            raise ValueError("MultiheadAttention.from_torch: add_bias_kv=True is not supported")
        if mha.add_zero_attn:
            raise ValueError("MultiheadAttention.from_torch: add_zero_attn=True is not supported")
        has_bias = mha.out_proj.bias is not None
        new = cls(
            mha.embed_dim,
            mha.num_heads,
            bias=has_bias,
            dropout=mha.dropout,
            batch_first=mha.batch_first,
            kdim=mha.kdim,
            vdim=mha.vdim,
        )
        ref = mha.out_proj.weight
        new.to(device=ref.device, dtype=ref.dtype)
        e = mha.embed_dim
        if mha._qkv_same_embed_dim:
            w_q, w_k, w_v = torch.split(mha.in_proj_weight, e, dim=0)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        with torch.no_grad():
            for lin, w in zip((new.q_proj, new.k_proj, new.v_proj), (w_q, w_k, w_v)):
                lin.weight.copy_(w)
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if has_bias:
                for lin, b in zip((new.q_proj, new.k_proj, new.v_proj), torch.split(mha.in_proj_bias, e)):
                    lin.bias.copy_(b)
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new


class TransformerEncoderLayer(nn.Module):
    """Hookable equivalent of ``torch.nn.TransformerEncoderLayer`` (post- or pre-norm).

    Submodule names follow torch (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``),
    so parameter names differ only inside ``self_attn`` (see :class:`MultiheadAttention`).
    ``activation`` is ``"relu"`` or ``"gelu"`` (as torch), or ``"tanh"``, ``"sigmoid"``, ``"linear"``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        *,
        dropout: float = 0.0,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._act = activation_function(activation, "TransformerEncoderLayer activation")
        self.activation = activation
        self.batch_first = batch_first
        self.norm_first = norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, bias=bias, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None) -> Tensor:
        x = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)[0]
        out: Tensor = self.dropout1(x)
        return out

    def _ff_block(self, x: Tensor) -> Tensor:
        out: Tensor = self.dropout2(self.linear2(self.dropout(self._act(self.linear1(x)))))
        return out

    def forward(
        self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """Encode ``src`` (N, T, d_model) (batch_first); masks as ``torch.nn.TransformerEncoderLayer``."""
        x = src if self.batch_first else src.transpose(0, 1)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x if self.batch_first else x.transpose(0, 1)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> TransformerEncoderLayer:
        """Copy of ``layer`` (same weights, dtype, device, dropout, norm placement)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(
                f"TransformerEncoderLayer.from_torch expects torch.nn.TransformerEncoderLayer, got {type(layer).__name__}"
            )
        act = layer.activation
        if getattr(layer, "activation_relu_or_gelu", 0) == 1:
            name = "relu"
        elif getattr(layer, "activation_relu_or_gelu", 0) == 2 and getattr(act, "approximate", "none") == "none":
            name = "gelu"
        else:
            raise ValueError(f"TransformerEncoderLayer.from_torch: activation {act!r} is not supported (relu, gelu)")
        mha = layer.self_attn
        new = cls(
            mha.embed_dim,
            mha.num_heads,
            dim_feedforward=layer.linear1.out_features,
            dropout=layer.dropout.p,
            activation=name,
            layer_norm_eps=layer.norm1.eps,
            batch_first=mha.batch_first,
            norm_first=layer.norm_first,
            bias=layer.linear1.bias is not None,
        )
        ref = layer.linear1.weight
        new.to(device=ref.device, dtype=ref.dtype)
        new.self_attn = MultiheadAttention.from_torch(mha)
        new.self_attn.batch_first = True  # this layer transposes once, outside the attention
        # dropout1/dropout2 may differ from the attention dropout in a hand-edited layer
        new.dropout1.p, new.dropout2.p = layer.dropout1.p, layer.dropout2.p
        with torch.no_grad():
            for name_ in ("linear1", "linear2", "norm1", "norm2"):
                new.get_submodule(name_).load_state_dict(layer.get_submodule(name_).state_dict())
        return new
