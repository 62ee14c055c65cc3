"""Model-agnostic training: the LightningModule, optimiser and schedule, metrics."""
