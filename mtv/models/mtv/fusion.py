"""Cross-view fusion: one interface, chosen by name (`cva`, `bottleneck`, `mlp`, `none`).

A fusion module owns what happens at its fusion layers: it receives every view's tokens and the views'
ordinary ViT blocks of that layer, and returns the updated tokens. At every other layer the encoder runs
each view's block on its own. Views are in model order (fewest tokens first); tokens are folded as
(batch * chunks, tokens, width), so fusion only ever relates tokens of the same time chunk.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtv.errors import ConfigError
from mtv.models.layers import Block, CrossAttention, drop_path, layer_norm
from mtv.models.mtv.config import MTVConfig


class Fusion(nn.Module):
    """Base: no lateral connections (late fusion: views meet only in the global encoder)."""

    def __init__(self, config: MTVConfig) -> None:
        super().__init__()
        self.layers: frozenset[int] = frozenset(config.fusion.layers)

    @classmethod
    def validate(cls, config: MTVConfig) -> None:
        """Raise ConfigError when this fusion type cannot be built for `config` (start-up check)."""
        if cls is Fusion:
            return
        fusion = config.fusion
        if not fusion.layers:
            raise ConfigError(f"model.fusion.layers is empty for fusion type {fusion.type!r}; give 0-based layers")
        bad = [layer for layer in fusion.layers if not 0 <= layer < config.depth]
        if bad:
            raise ConfigError(
                f"model.fusion.layers={list(fusion.layers)}: {bad} outside the views' depth; "
                f"allowed 0..{config.depth - 1}"
            )

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """scenic's initialisation of the fusion's own parameters (generic layers are set by the model)."""

    def initial_state(self, batch: int, chunks: int) -> Any:
        """State carried from fusion layer to fusion layer (the bottleneck tokens); None by default."""
        return None

    def fuse(
        self, layer: int, xs: list[Tensor], blocks: list[Block | None], chunks: int, state: Any
    ) -> tuple[list[Tensor], Any]:
        raise NotImplementedError


class CrossViewAttention(Fusion):
    """scenic's CVA: before the views' blocks, each fewer-token view attends to its more-token neighbour.

    LayerNorms of all views are taken from the tokens as they are at the start of the layer, so every pair
    sees pre-update keys/values. The update is applied even to views that have no own block left at
    this layer (MTV-L at layer 23), and only the query view gets the residual.
    """

    def __init__(self, config: MTVConfig) -> None:
        super().__init__(config)
        self.pairs = config.cva_pairs()
        self.norms = nn.ModuleDict()
        self.attention = nn.ModuleDict()
        self.drop_path_rates: dict[str, float] = {}
        for layer in sorted(self.layers):
            self.norms[str(layer)] = nn.ModuleList(layer_norm(v.hidden_size) for v in config.views)
            for q, kv in self.pairs:
                vq, vkv = config.views[q], config.views[kv]
                src = vq if config.fusion.use_query_config else vkv
                key = f"{layer}_{q}_{kv}"
                self.attention[key] = CrossAttention(
                    vq.hidden_size, vkv.hidden_size, src.hidden_size, src.num_heads, config.attention_dropout
                )
                # current scenic: the rate follows the key/value view's depth (may exceed the setting)
                self.drop_path_rates[key] = config.stochastic_depth * layer / max(vkv.num_layers - 1, 1)
        self.dropout = config.dropout

    def fuse(self, layer, xs, blocks, chunks, state):
        normed = [norm(x) for norm, x in zip(self.norms[str(layer)], xs)]
        xs = list(xs)
        for q, kv in self.pairs:
            key = f"{layer}_{q}_{kv}"
            y = F.dropout(self.attention[key](normed[q], normed[kv]), self.dropout, self.training)
            xs[q] = xs[q] + drop_path(y, self.drop_path_rates[key], self.training, chunks)
        return [x if block is None else block(x, chunks) for x, block in zip(xs, blocks)], state


    @classmethod
    def validate(cls, config: MTVConfig) -> None:
        super().validate(config)
        for q, kv in config.cva_pairs():
            src = config.views[q] if config.fusion.use_query_config else config.views[kv]
            if src.hidden_size % src.num_heads:
                raise ConfigError(f"cross-view attention {q}<-{kv}: heads do not divide width")


class BottleneckFusion(Fusion):
    """Bottleneck tokens (n per time chunk) passed from view to view through the views' own blocks.

    At a fusion layer the views run one after another (most tokens first when descending); each appends
    the bottleneck tokens after its own, runs its block and hands the updated bottleneck on, projected to
    the next view's width where widths differ. The bottleneck is carried to the next fusion layer as is.
    """

    def __init__(self, config: MTVConfig) -> None:
        super().__init__(config)
        n_views = len(config.views)
        self.order = list(range(n_views - 1, -1, -1)) if config.fusion.descending else list(range(n_views))
        self.num_tokens = config.fusion.bottleneck_tokens
        width = config.views[self.order[0]].hidden_size
        self.tokens = nn.Parameter(torch.empty(1, config.t_min, self.num_tokens, width))
        self.projections = nn.ModuleDict()
        for layer in sorted(self.layers):
            for v in self.order:
                view = config.views[v]
                if layer >= view.num_layers:
                    continue
                if width != view.hidden_size:
                    self.projections[f"{layer}_view{v}"] = nn.Linear(width, view.hidden_size)
                    width = view.hidden_size

    @classmethod
    def validate(cls, config: MTVConfig) -> None:
        super().validate(config)
        if config.fusion.bottleneck_tokens < 1:
            raise ConfigError(f"model.fusion.bottleneck_tokens={config.fusion.bottleneck_tokens}: must be >= 1")

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, .02) bottleneck tokens, Xavier-uniform width projections with zero biases."""
        nn.init.normal_(self.tokens, std=0.02)
        for proj in self.projections.values():
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def initial_state(self, batch: int, chunks: int) -> Tensor:
        return self.tokens.expand(batch, -1, -1, -1).reshape(batch * chunks, self.num_tokens, -1)

    def fuse(self, layer, xs, blocks, chunks, state):
        xs = list(xs)
        for v in self.order:
            block = blocks[v]
            if block is None:
                continue
            key = f"{layer}_view{v}"
            if key in self.projections:
                state = self.projections[key](state)
            joined = block(torch.cat([xs[v], state], dim=1), chunks)
            xs[v], state = joined[:, : -self.num_tokens], joined[:, -self.num_tokens :]
        return xs, state


class MLPFusion(Fusion):
    """The paper's MLP fusion: view i's MLP also reads view i+1's tokens, concatenated along channels.

    Token correspondence: each token of view i (a temporal slot and a spatial position of a chunk) is paired
    with the average of view i+1's tokens over the slots that cover the same frames, at the same spatial
    position (grids of different size are matched by adaptive average pooling; CLS pairs with CLS).
    Concatenating [LN(x_i), LN_f(pooled x_{i+1})] before the first Dense is a Dense of the original input
    plus a new Dense of the fused input; the new one starts at zero, so a ViT-initialised block computes
    exactly what it did before fusion. The MLP maps back to d(i) as usual. See docs/model.md.
    """

    def __init__(self, config: MTVConfig) -> None:
        super().__init__(config)
        self.has_cls = config.classifier == "token"
        self.grids = [config.spatial_grid(i) for i in range(len(config.views))]
        self.slots = [config.temporal_tokens(i) // config.t_min for i in range(len(config.views))]
        self.norms = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for layer in sorted(self.layers):
            for i in range(len(config.views) - 1):
                if layer >= config.views[i].num_layers:
                    continue
                source, target = config.views[i + 1], config.views[i]
                self.norms[f"{layer}_view{i}"] = layer_norm(source.hidden_size)
                self.projections[f"{layer}_view{i}"] = nn.Linear(source.hidden_size, target.mlp_dim, bias=False)

    @classmethod
    def validate(cls, config: MTVConfig) -> None:
        super().validate(config)
        if len(config.views) < 2:
            raise ConfigError("model.fusion.type=mlp needs at least two views")
        counts = [config.temporal_tokens(i) for i in range(len(config.views))]
        for i in range(len(config.views) - 1):
            if counts[i + 1] % counts[i]:
                raise ConfigError(
                    f"model.fusion.type=mlp: view {i + 1} has {counts[i + 1]} temporal tokens, not a multiple "
                    f"of view {i}'s {counts[i]}"
                )

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero projections: the fused input starts switched off, so a ViT-initialised block is unchanged."""
        for proj in self.projections.values():
            nn.init.zeros_(proj.weight)

    def _align(self, x: Tensor, source: int, target: int) -> Tensor:
        """Average view `source`'s tokens onto view `target`'s token positions (same chunk)."""
        bc, _, d = x.shape
        (sh, sw), (th, tw) = self.grids[source], self.grids[target]
        k_s, k_t = self.slots[source], self.slots[target]
        per_slot = sh * sw + int(self.has_cls)
        x = x.view(bc, k_t, k_s // k_t, per_slot, d).mean(dim=2)
        patches = x[:, :, int(self.has_cls) :].reshape(bc * k_t, sh, sw, d).permute(0, 3, 1, 2)
        if (sh, sw) != (th, tw):
            patches = F.adaptive_avg_pool2d(patches, (th, tw))
        patches = patches.permute(0, 2, 3, 1).reshape(bc, k_t, th * tw, d)
        if self.has_cls:
            patches = torch.cat([x[:, :, :1], patches], dim=2)
        return patches.reshape(bc, -1, d)

    def fuse(self, layer, xs, blocks, chunks, state):
        xs = [x if block is None else block.attention_residual(x, chunks) for x, block in zip(xs, blocks)]
        out = []
        for i, (x, block) in enumerate(zip(xs, blocks)):
            if block is None:
                out.append(x)
                continue
            key = f"{layer}_view{i}"
            extra = None
            if key in self.projections:
                extra = self.projections[key](self.norms[key](self._align(xs[i + 1], i + 1, i)))
            out.append(block.mlp_residual(x, chunks, extra))
        return out, state


FUSIONS: dict[str, type[Fusion]] = {
    "none": Fusion,
    "cva": CrossViewAttention,
    "bottleneck": BottleneckFusion,
    "mlp": MLPFusion,
}


def build_fusion(config: MTVConfig) -> Fusion:
    return FUSIONS[config.fusion.type](config)
