"""MTV (Yan et al. 2022) and the baselines built from its code: ViViT-FE, SlowFast, the ensemble."""
