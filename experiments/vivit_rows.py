"""ViViT's comparison of its four models (Arnab et al. 2021; Kinetics-400, ViViT-B/16x2, 32 frames, 224 crops,
4x3 test views): the published numbers, as plain data for the `vivit_models` table.

`paper_gflops` are scenic's GFLOPs (its trainer's roofline count of every op, a multiply-add counted once),
so they sit 0.3-0.8% above our `gmacs_per_view`, which counts matmuls, the conv and attention only
(451.52 against 455.18 for model 1, vivit_spec.md §3). Sources:
- top-1, GFLOPs and parameters: the paper's table as read in shared/reference/perf_anchors.md §1b;
- the GFLOPs and parameters also agree with what scenic's code gives (vivit_spec.md §3: 455.18 / 284.35 /
  372.27 / 277.10 scenic GFLOPs; 88,954,000 / 115,062,928 / 117,319,312 / 88,952,464 parameters), where
  vivit_spec.md notes its own paper figures were recalled, not checked; perf_anchors.md read them in the
  paper, so no figure here is unconfirmed. The top-1 figures appear only in perf_anchors.md (and the issue),
  not in vivit_spec.md. scenic's README reports 79.9 (model 1) and 78.4 (model 2) for its released
  checkpoints.
- model 3 needs an attention order the paper does not state; scenic's counts are the same for both orders.
"""

from __future__ import annotations

VIVIT_ROWS: tuple[dict[str, object], ...] = (
    {"attention": "spacetime", "label": "Model 1: spatio-temporal", "classifier": "token",
     "paper_top1": 80.0, "paper_gflops": 455.2, "paper_params_m": 88.9},
    {"attention": "factorized_encoder", "label": "Model 2: factorised encoder", "classifier": "token",
     "paper_top1": 78.8, "paper_gflops": 284.4, "paper_params_m": 115.1},
    {"attention": "factorized_self_attention", "label": "Model 3: factorised self-attention", "classifier": "gap",
     "paper_top1": 77.4, "paper_gflops": 372.3, "paper_params_m": 117.3},
    {"attention": "factorized_dot_product", "label": "Model 4: factorised dot-product", "classifier": "gap",
     "paper_top1": 76.3, "paper_gflops": 277.1, "paper_params_m": 88.9},
)
