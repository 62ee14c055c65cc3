"""Parameters and multiply-adds per component, counted without data and without memory.

The counts use scenic's conventions (shared/reference/scenic_reference.md §2-3) so that they compare one to
one with the numbers measured on Google's code:

- components: tokenizer (tubelet convs and the per-slot view CLS tokens), view encoders (position
  embeddings and every view block, including the self-attention/MLP that a fusion layer runs), fusion
  (cross-attention and its norms; bottleneck tokens and projections; MLP-fusion norms and projections),
  global encoder (its CLS, position embedding, blocks, final norm) and head;
- MACs count matrix multiplies, convolutions and the two attention matmuls (QK^T and AV), at batch 1 for
  one clip ("GMACs per view" in video papers). Biases, norms and softmax are not counted.

MACs come from `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per MAC) on a twin of the model built on
the `meta` device, so MTV-L counts in about a second with no memory. Attention runs on PyTorch's math path
there, as plain `bmm`s that the counter has formulas for; CPU's fused SDPA kernel would count as 0. Each op
goes to the outermost submodule that ran it, so a view block run by bottleneck fusion (bottleneck tokens
included) counts for its view, as scenic does, and only the fusion's own modules count for fusion.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from mtv.models.counting import component_counts, format_gmacs, macs_by_module
from mtv.models.ensemble import Ensemble
from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.model import MTV

COMPONENTS = ("tokenizer", "view_encoders", "fusion", "global_encoder", "head")
COMPONENT_TITLES = {
    "tokenizer": "tokenizer (+ view CLS)",
    "view_encoders": "view encoders",
    "fusion": "fusion",
    "global_encoder": "global encoder",
    "head": "head",
}
_VIEW_PART = re.compile(r"^views\.(\d+)\.([^.]+)")


def profile_model(model: nn.Module, num_frames: int, image_size: int | Sequence[int]) -> dict[str, Any]:
    """Counts of an MTV (or the sum over an Ensemble's members) for one clip of `num_frames` x `image_size`.

    Returns a JSON-serialisable dict:
    `params_total`, `params` (per component), `params_per_view` (tokenizer + CLS + encoder, by view name),
    `gmacs_per_view` (GMACs for one clip, batch 1; "view" in the test-time sense of one clip x crop),
    `gmacs` (per component) and `gmacs_per_view_encoder` (by view name).
    Parameters are those of `model` itself; MACs are counted on a meta-device twin built at the requested
    input size, so a size other than the model's own gives the cost with resized position embeddings.
    """
    model = getattr(model, "_orig_mod", model)  # the module inside torch.compile's wrapper
    if isinstance(model, Ensemble):
        return _profile_ensemble(model, num_frames, image_size)
    if not isinstance(model, MTV):
        raise TypeError(f"profile_model counts MTV and Ensemble models, got {type(model).__name__}")
    num_frames = int(num_frames)
    size = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    labels = _view_labels(model.config)

    params = dict.fromkeys(COMPONENTS, 0)
    params_per_view = dict.fromkeys(labels, 0)
    for name, param in model.named_parameters():
        component, view = _component(name)
        params[component] += param.numel()
        if view is not None:
            params_per_view[labels[view]] += param.numel()

    macs = dict.fromkeys(COMPONENTS, 0)
    macs_per_view = dict.fromkeys(labels, 0)
    for name, count in _macs_by_module(model.config, num_frames, size).items():
        component, view = _component(name)
        macs[component] += count
        if component == "view_encoders":
            macs_per_view[labels[view]] += count

    return {
        "model": "MTV",
        "variant": model.config.variant,
        "input": [1, 3, num_frames, *size],
        **component_counts(params, macs),
        "params_per_view": params_per_view,
        "gmacs_per_view_encoder": {k: v / 1e9 for k, v in macs_per_view.items()},
    }


def format_profile(profile: dict[str, Any]) -> str:
    """A Markdown table of a `profile_model` result, components first, then one row per view."""
    title = profile["model"] if profile["model"] == "Ensemble" else f"MTV {profile['variant']}"
    lines = [
        f"{title}, input {'x'.join(str(s) for s in profile['input'])}: {profile['params_total']:,} parameters, "
        f"{profile['gmacs_per_view']:.2f} GMACs per clip (matmul + conv + attention; 1 MAC = 2 FLOPs)",
        "",
        "| component | params | GMACs |",
        "| --- | ---: | ---: |",
    ]
    for component in COMPONENTS:
        params, gmacs = profile["params"][component], profile["gmacs"][component]
        lines.append(f"| {COMPONENT_TITLES[component]} | {params:,} | {format_gmacs(gmacs)} |")
    lines.append(f"| **total** | **{profile['params_total']:,}** | **{format_gmacs(profile['gmacs_per_view'])}** |")
    lines += ["", "| view | params (tokenizer + CLS + encoder) | encoder GMACs |", "| --- | ---: | ---: |"]
    for label, count in profile["params_per_view"].items():
        lines.append(f"| {label} | {count:,} | {format_gmacs(profile['gmacs_per_view_encoder'][label])} |")
    return "\n".join(lines)


def _profile_ensemble(model: Ensemble, num_frames: int, image_size: int | Sequence[int]) -> dict[str, Any]:
    """Members run one after another on the same clip, so every count is their sum."""
    members = [profile_model(m, num_frames, image_size) for m in model.members]
    per_member = {key: {f"members.{k}.{label}": value for k, p in enumerate(members) for label, value in p[key].items()}
                  for key in ("params_per_view", "gmacs_per_view_encoder")}
    return {
        "model": "Ensemble",
        "variant": " | ".join(p["variant"] for p in members),
        "input": members[0]["input"],
        "params_total": sum(p["params_total"] for p in members),
        "params": {c: sum(p["params"][c] for p in members) for c in COMPONENTS},
        "params_per_view": per_member["params_per_view"],
        "gmacs_per_view": sum(p["gmacs_per_view"] for p in members),
        "gmacs": {c: sum(p["gmacs"][c] for p in members) for c in COMPONENTS},
        "gmacs_per_view_encoder": per_member["gmacs_per_view_encoder"],
        "members": members,
    }


def _macs_by_module(config: MTVConfig, num_frames: int, size: tuple[int, int]) -> dict[str, int]:
    """MACs of one batch-1 forward pass, keyed by the outermost submodule that ran them (e.g. `views.0.blocks.3`)."""
    config = replace(config, num_frames=num_frames, image_size=size)
    config.validate()
    with torch.device("meta"):
        twin = MTV(config).eval()
        video = torch.empty(1, 3, num_frames, *size)
    return macs_by_module(twin, video)


def _component(name: str) -> tuple[str, int | None]:
    """Component (and view index, for a view's parts) of a parameter or module path of MTV."""
    match = _VIEW_PART.match(name)
    if match:
        part = "tokenizer" if match.group(2) in ("tokenizer", "cls_token") else "view_encoders"
        return part, int(match.group(1))
    top = name.split(".")[0]
    if top in ("fusion", "global_encoder", "head"):
        return top, None
    raise ValueError(f"{name!r} belongs to no component of MTV ({', '.join(COMPONENTS)})")


def _view_labels(config: MTVConfig) -> list[str]:
    """View names in model order (e.g. Ti/8, S/4, B/2); a repeated name gets its index appended."""
    names = [view.name or f"view{i}" for i, view in enumerate(config.views)]
    return [name if names.count(name) == 1 else f"{name}#{i}" for i, name in enumerate(names)]
