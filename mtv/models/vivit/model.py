"""ViViT (Arnab et al., ICCV 2021) as scenic computes it: the four attention types over one tubelet encoder.

Input (B, 3, T, H, W) in [-1, 1]. A 3-D conv (kernel = stride = tubelet) gives nt x nh x nw tokens, flattened
time-major: token index (t * nh + h) * nw + w. Then, by `spec.attention` (docs/models/vivit.md draws them):

- spacetime (model 1): [CLS] + all tokens, one position embedding each, joint attention in every block;
- factorized_encoder (model 2): each frame slot's nh*nw tokens (+ a spatial CLS, a position embedding
  shared by all slots) through a spatial ViT, its pooled output per slot through a temporal transformer;
- factorized_self_attention (model 3): every block attends over space (within a frame slot), then over
  time (within a spatial location), or the other way round (`attention_order`), then its MLP;
- factorized_dot_product (model 4): plain blocks whose attention gives half of the heads (the first half)
  the time axis and the other half the space axis.
Then the final LayerNorm, CLS or mean pooling, and a zero-initialised linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mtv.models.layers import Attention, Block, Mlp, central_frame_init_, init_vit_layer_, layer_norm
from mtv.models.vivit.config import (
    FACTORIZED_DOT_PRODUCT,
    FACTORIZED_ENCODER,
    FACTORIZED_SELF_ATTENTION,
    ViViTSpec,
)


class FactorizedDotProductAttention(Attention):
    """Model 4's attention: the parameters of plain self-attention; heads [0, H/2) attend over the nt frame
    slots of their spatial location, heads [H/2, H) over the ns locations of their frame slot."""

    def __init__(self, dim: int, num_heads: int, frames: int, attention_dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, attention_dropout)
        self.frames = frames

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        nt, heads = self.frames, self.num_heads
        half, ns = heads // 2, n // self.frames
        q, k, v = self.qkv(x).view(b, nt, ns, 3, heads, d // heads).unbind(3)  # each (B, nt, ns, H, dh)
        dropout = self.attention_dropout if self.training else 0.0

        def attend(axes: tuple[int, ...], heads_slice: slice) -> Tensor:
            """SDPA over the axis that `axes` moves to position -2; the result back in (B, nt, ns, h, dh)."""
            parts = [t[..., heads_slice, :].permute(*axes) for t in (q, k, v)]
            out = F.scaled_dot_product_attention(*parts, dropout_p=dropout)
            return out.permute(*[axes.index(i) for i in range(5)])

        over_time = attend((0, 2, 3, 1, 4), slice(0, half))  # SDPA on (B, ns, h, nt, dh)
        over_space = attend((0, 1, 3, 2, 4), slice(half, heads))  # SDPA on (B, nt, h, ns, dh)
        return self.proj(torch.cat([over_time, over_space], dim=3).reshape(b, n, d))


class FactorizedSelfAttentionBlock(nn.Module):
    """Model 3's block: LN + attention over space and over time (each with all heads, in `order`), each with
    its residual, then LN + MLP. scenic gives this block no stochastic depth."""

    def __init__(self, spec: ViViTSpec) -> None:
        super().__init__()
        d = spec.hidden_size
        self.frames = spec.grid[0]
        self.order = ("space", "time") if spec.attention_order == "space_time" else ("time", "space")
        self.norm_space = layer_norm(d)
        self.attn_space = Attention(d, spec.num_heads, spec.attention_dropout)
        self.norm_time = layer_norm(d)
        self.attn_time = Attention(d, spec.num_heads, spec.attention_dropout)
        self.norm_mlp = layer_norm(d)
        self.mlp = Mlp(d, spec.mlp_dim, spec.dropout)
        self.dropout = spec.dropout
        self.grad_checkpointing = False

    def _attend(self, x: Tensor, axis: str) -> Tensor:
        b, n, d = x.shape
        nt, ns = self.frames, n // self.frames
        norm, attn = (self.norm_space, self.attn_space) if axis == "space" else (self.norm_time, self.attn_time)
        seq = x.reshape(b * nt, ns, d) if axis == "space" else x.view(b, nt, ns, d).transpose(1, 2).reshape(-1, nt, d)
        seq = seq + F.dropout(attn(norm(seq)), self.dropout, self.training)
        return seq.reshape(b, n, d) if axis == "space" else seq.view(b, ns, nt, d).transpose(1, 2).reshape(b, n, d)

    def _forward(self, x: Tensor) -> Tensor:
        for axis in self.order:
            x = self._attend(x, axis)
        return x + self.mlp(self.norm_mlp(x))

    def forward(self, x: Tensor, chunks: int = 1) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class Encoder(nn.Module):
    """scenic's Encoder and pooling: optional CLS in front, learned position embedding, dropout, blocks,
    final LayerNorm, then the CLS output or the mean over tokens -> (B, d)."""

    def __init__(self, tokens: int, dim: int, blocks: list[nn.Module], has_cls: bool, dropout: float) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if has_cls else None
        self.pos_embed = nn.Parameter(torch.empty(1, tokens + int(has_cls), dim))
        self.blocks = nn.ModuleList(blocks)
        self.norm = layer_norm(dim)
        self.dropout = dropout

    def forward(self, x: Tensor, chunks: int = 1) -> Tensor:
        """(B, N, d) -> (B, d); `chunks` consecutive rows are one example (stochastic depth shares its draw)."""
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = F.dropout(x + self.pos_embed, self.dropout, self.training)
        for block in self.blocks:
            x = block(x, chunks)
        x = self.norm(x)
        return x[:, 0] if self.cls_token is not None else x.mean(dim=1)


def _plain_blocks(spec: ViViTSpec, layers: int, heads: int, mlp_dim: int) -> list[nn.Module]:
    """Pre-LN blocks with scenic's stochastic depth (ramp lyr / max(L - 1, 1) * rate, kept rows not rescaled);
    model 4's attention."""
    blocks = []
    for layer in range(layers):
        attention = None
        if spec.attention == FACTORIZED_DOT_PRODUCT:
            attention = FactorizedDotProductAttention(spec.hidden_size, heads, spec.grid[0], spec.attention_dropout)
        rate = spec.stochastic_depth * layer / max(layers - 1, 1)
        blocks.append(Block(spec.hidden_size, heads, mlp_dim, spec.dropout, spec.attention_dropout, rate, attention,
                            drop_path_rescale=False))
    return blocks


class ViViT(nn.Module):
    """One of ViViT's four models, chosen by `spec.attention`; see the module docstring."""

    def __init__(self, spec: ViViTSpec) -> None:
        super().__init__()
        self.spec = spec
        h, w, t = spec.patch
        d = spec.hidden_size
        nt = spec.grid[0]
        self.tokenizer = nn.Conv3d(3, d, kernel_size=(t, h, w), stride=(t, h, w))
        if spec.attention == FACTORIZED_ENCODER:
            self.spatial_encoder = Encoder(
                spec.spatial_tokens, d, _plain_blocks(spec, spec.num_layers, spec.num_heads, spec.mlp_dim),
                spec.has_cls, spec.dropout)
            self.temporal_encoder = Encoder(
                nt, d, _plain_blocks(spec, spec.temporal_layers, spec.temporal_heads, spec.temporal_mlp_dim),
                spec.has_cls, spec.dropout)
        else:
            if spec.attention == FACTORIZED_SELF_ATTENTION:
                blocks = [FactorizedSelfAttentionBlock(spec) for _ in range(spec.num_layers)]
            else:
                blocks = _plain_blocks(spec, spec.num_layers, spec.num_heads, spec.mlp_dim)
            self.encoder = Encoder(nt * spec.spatial_tokens, d, blocks, spec.has_cls, spec.dropout)
        self.head = nn.Linear(d, spec.num_classes)
        self.reset_parameters()

    def forward_features(self, video: Tensor) -> Tensor:
        """Pooled features (B, d)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video of shape (B, 3, T, H, W), got {tuple(video.shape)}")
        x = self.tokenizer(video).flatten(2).transpose(1, 2)  # (B, nt*nh*nw, d), time-major
        if self.spec.attention != FACTORIZED_ENCODER:
            return self.encoder(x)
        b, _, d = x.shape
        nt = self.spec.grid[0]
        per_slot = self.spatial_encoder(x.reshape(b * nt, -1, d), chunks=nt)  # one sequence per frame slot
        return self.temporal_encoder(per_slot.view(b, nt, d))

    def forward(self, video: Tensor) -> Tensor:
        return self.head(self.forward_features(video))

    # ---- options used by training -------------------------------------------------------------
    def _blocks(self) -> list[nn.Module]:
        return [block for module in self.modules() if isinstance(module, Encoder) for block in module.blocks]

    @property
    def grad_checkpointing(self) -> bool:
        return any(block.grad_checkpointing for block in self._blocks())

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in backward instead of storing them (ViViT-L model 1: 3137 tokens)."""
        for block in self._blocks():
            block.grad_checkpointing = enabled

    def no_weight_decay(self) -> set[str]:
        """CLS tokens and position embeddings (timm's convention)."""
        return {name for name, _ in self.named_parameters() if name.endswith(("cls_token", "pos_embed"))}

    @property
    def num_layers_for_lr_decay(self) -> int:
        """Layer ids run 0 (tokenizer, embeddings) .. all blocks + 1 (final norm, head)."""
        temporal = self.spec.temporal_layers if self.spec.attention == FACTORIZED_ENCODER else 0
        return self.spec.num_layers + temporal + 2

    def layer_id(self, name: str) -> int:
        """Depth of a parameter for layer-wise learning-rate decay: 0 = tokenizer and the first encoder's
        embeddings, then one per block (model 2: spatial blocks, then temporal), last = final norm and head."""
        parts = name.split(".")
        top, part = parts[0], parts[1] if len(parts) > 1 else ""
        last = self.num_layers_for_lr_decay - 1
        spatial = self.spec.num_layers
        if top in ("encoder", "spatial_encoder"):
            if part == "blocks":
                return int(parts[2]) + 1
            if part == "norm":
                return last if top == "encoder" else spatial
            return 0
        if top == "temporal_encoder":
            if part == "blocks":
                return spatial + 1 + int(parts[2])
            return last if part == "norm" else spatial + 1
        return 0 if top == "tokenizer" else last

    # ---- initialisation (scenic's random init) ------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """scenic's initialisers: ViT layers (see `init_vit_layer_`), N(0, .02) position embeddings, zero CLS
        tokens, the central-frame tubelet kernel (without scenic's wrong-axis bug) and a zero head."""
        for module in self.modules():
            init_vit_layer_(module)
        central_frame_init_(self.tokenizer)
        for module in self.modules():
            if isinstance(module, Encoder):
                nn.init.normal_(module.pos_embed, std=0.02)
                if module.cls_token is not None:
                    nn.init.zeros_(module.cls_token)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

