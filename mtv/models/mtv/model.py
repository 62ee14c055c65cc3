"""MTV: per-view tubelet encoders with cross-view fusion, then a global encoder over time (scenic's model).

Data flow for input (B, 3, F, H, W) in [-1, 1] (shapes for MTV-B, 32x224x224):
1. each view sees every `frame_stride`-th frame and tokenises with a 3-D conv (kernel = stride = tubelet)
   -> (B, t_i, N, d_i); one CLS token per temporal slot is prepended -> (B, t_i, 1+N, d_i);
2. the t_i slots are grouped into T_min chunks of k_i = t_i / T_min consecutive slots (a reshape),
   a spatial position embedding (shared by all slots) is added, and chunks are folded into the batch:
   attention never crosses a chunk before the global encoder;
3. layers 0..max depth-1 run each view's ViT block, or the fusion module at fusion layers; there is no
   final LayerNorm on the view encoders;
4. the per-slot CLS tokens of each view are tiled (whole-sequence repeat) to T_max and concatenated along
   channels (width = sum of view widths), a global CLS is prepended, and the global encoder runs;
5. its CLS goes through a zero-initialised linear head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtv.models.layers import Block, CrossAttention, central_frame_init_, init_vit_layer_, layer_norm
from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.fusion import build_fusion


class ViewEncoder(nn.Module):
    """One view: tubelet tokenizer, per-slot CLS tokens, spatial position embedding, ViT blocks."""

    def __init__(self, config: MTVConfig, index: int) -> None:
        super().__init__()
        view = config.views[index]
        h, w, t = view.patch
        self.frame_stride = view.frame_stride
        self.slots_per_chunk = config.temporal_tokens(index) // config.t_min
        self.tokenizer = nn.Conv3d(3, view.hidden_size, kernel_size=(t, h, w), stride=(t, h, w))
        grid = config.spatial_grid(index)
        has_cls = config.classifier == "token"
        self.cls_token = (
            nn.Parameter(torch.zeros(1, config.temporal_tokens(index), 1, view.hidden_size)) if has_cls else None
        )
        self.pos_embed = nn.Parameter(torch.empty(1, grid[0] * grid[1] + int(has_cls), view.hidden_size))
        rates = [config.stochastic_depth * layer / max(view.num_layers - 1, 1) for layer in range(view.num_layers)]
        self.blocks = nn.ModuleList(
            Block(view.hidden_size, view.num_heads, view.mlp_dim, config.dropout, config.attention_dropout, rate)
            for rate in rates
        )

    def tokenize(self, video: Tensor, chunks: int) -> Tensor:
        """(B, 3, F, H, W) -> (B * chunks, slots_per_chunk * (1 + N), d)."""
        if self.frame_stride > 1:
            video = video[:, :, :: self.frame_stride]
        x = self.tokenizer(video).flatten(3).permute(0, 2, 3, 1)  # (B, t, N, d), row-major over (h, w)
        b, t, _, d = x.shape
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1, -1), x], dim=2)
        x = x.reshape(b, chunks, self.slots_per_chunk, -1, d) + self.pos_embed.unsqueeze(1).unsqueeze(1)
        return x.reshape(b * chunks, -1, d)

    def slot_features(self, x: Tensor, batch: int) -> Tensor:
        """Encoder output (B * chunks, k * (1 + N), d) -> one feature per temporal slot (B, t, d)."""
        tokens_per_slot = self.pos_embed.shape[1]
        x = x.reshape(batch, -1, tokens_per_slot, x.shape[-1])
        return x[:, :, 0] if self.cls_token is not None else x.mean(dim=2)


class GlobalEncoder(nn.Module):
    """Transformer over time on the merged per-slot view features; returns the pooled feature (B, C)."""

    def __init__(self, config: MTVConfig) -> None:
        super().__init__()
        g = config.global_encoder
        width = config.global_width
        self.merge = g.merge
        self.t_max = config.t_max
        self.time_projections = (
            nn.ModuleList(nn.Linear(v.hidden_size, width) for v in config.views) if g.merge == "time" else None
        )
        has_cls = config.classifier == "token"
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if has_cls else None
        self.pos_embed = nn.Parameter(torch.empty(1, config.global_tokens + int(has_cls), width))
        self.dropout = config.dropout
        rates = [config.stochastic_depth * layer / max(g.num_layers - 1, 1) for layer in range(g.num_layers)]
        self.blocks = nn.ModuleList(
            Block(width, g.num_heads, g.mlp_dim, config.dropout, config.attention_dropout, rate) for rate in rates
        )
        self.norm = layer_norm(width)

    def merge_views(self, features: list[Tensor]) -> Tensor:
        """Per-view (B, t_i, d_i) -> (B, T, C): tile to T_max and concatenate channels, or project and
        concatenate time. Tiling repeats the whole sequence (as scenic's jnp.tile), not each slot."""
        if self.time_projections is None:
            return torch.cat([f.repeat(1, self.t_max // f.shape[1], 1) for f in features], dim=-1)
        return torch.cat([proj(f) for proj, f in zip(self.time_projections, features)], dim=1)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.merge_views(features)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = F.dropout(x + self.pos_embed, self.dropout, self.training)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 0] if self.cls_token is not None else x.mean(dim=1)


class MTV(nn.Module):
    """Multiview Transformer; single-view ViViT-FE and SlowFast are configurations of it."""

    def __init__(self, config: MTVConfig) -> None:
        super().__init__()
        self.config = config
        self.views = nn.ModuleList(ViewEncoder(config, i) for i in range(len(config.views)))
        self.fusion = build_fusion(config)
        self.global_encoder = GlobalEncoder(config)
        self.head = nn.Linear(config.global_width, config.num_classes)
        self.reset_parameters()

    # ---- forward ------------------------------------------------------------------------------
    def encode_views(self, video: Tensor) -> list[Tensor]:
        """Run tokenizers and the multiview encoder; returns per-view (B * T_min, tokens, d_i)."""
        chunks = self.config.t_min
        xs = [view.tokenize(video, chunks) for view in self.views]
        state = self.fusion.initial_state(video.shape[0], chunks)
        for layer in range(self.config.depth):
            blocks = [view.blocks[layer] if layer < len(view.blocks) else None for view in self.views]
            if layer in self.fusion.layers:
                xs, state = self.fusion.fuse(layer, xs, blocks, chunks, state)
            else:
                xs = [x if block is None else block(x, chunks) for x, block in zip(xs, blocks)]
        return xs

    def forward_features(self, video: Tensor) -> Tensor:
        """Pre-logits (B, C)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video of shape (B, 3, T, H, W), got {tuple(video.shape)}")
        xs = self.encode_views(video)
        features = [view.slot_features(x, video.shape[0]) for view, x in zip(self.views, xs)]
        return self.global_encoder(features)

    def forward(self, video: Tensor) -> Tensor:
        return self.head(self.forward_features(video))

    # ---- options used by training -------------------------------------------------------------
    @property
    def grad_checkpointing(self) -> bool:
        return any(m.grad_checkpointing for m in self.modules() if isinstance(m, Block))

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in backward (for L and H views) instead of storing them."""
        for module in self.modules():
            if isinstance(module, Block):
                module.grad_checkpointing = enabled

    def no_weight_decay(self) -> set[str]:
        """Embeddings and tokens: position embeddings, CLS tokens, bottleneck tokens."""
        keys = ("pos_embed", "cls_token", "fusion.tokens")
        return {name for name, _ in self.named_parameters() if any(key in name for key in keys)}

    @property
    def num_layers_for_lr_decay(self) -> int:
        """Layer ids run 0 (tokenizers) .. depth + global layers + 1 (head)."""
        return self.config.depth + self.config.global_encoder.num_layers + 2

    def layer_id(self, name: str) -> int:
        """Depth of a parameter for layer-wise learning-rate decay (0 = input side)."""
        parts = name.split(".")
        if parts[0] == "views":
            return int(parts[3]) + 1 if parts[2] == "blocks" else 0
        if parts[0] == "fusion":
            layer = next((p for p in parts[2:] if p.split("_")[0].isdigit()), None)
            return int(layer.split("_")[0]) + 1 if layer is not None else 0
        if parts[0] == "global_encoder":
            if parts[1] == "blocks":
                return self.config.depth + 1 + int(parts[2])
            return self.config.depth + (self.config.global_encoder.num_layers + 1 if parts[1] == "norm" else 1)
        return self.num_layers_for_lr_decay - 1

    # ---- initialisation (scenic's random init) ------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform block kernels, N(0, 1e-6) MLP biases, N(0, .02) position embeddings and bottleneck,
        zero CLS tokens, zero CVA output projections and a zero head; the fusion initialises its own parameters."""
        for module in self.modules():
            init_vit_layer_(module)
            if isinstance(module, CrossAttention):
                for fc in (module.q, module.k, module.v):
                    nn.init.trunc_normal_(fc.weight, std=1.0 / math.sqrt(fc.in_features))  # LeCun normal
                    nn.init.zeros_(fc.bias)
                nn.init.zeros_(module.proj.weight)
                nn.init.zeros_(module.proj.bias)
        for view in self.views:
            central_frame_init_(view.tokenizer)
            nn.init.normal_(view.pos_embed, std=0.02)
            if view.cls_token is not None:
                nn.init.zeros_(view.cls_token)
        self.fusion.reset_parameters()
        g = self.global_encoder
        nn.init.normal_(g.pos_embed, std=0.02)
        if g.cls_token is not None:
            nn.init.zeros_(g.cls_token)
        for proj in g.time_projections or []:
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

