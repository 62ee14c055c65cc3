"""The model zoo: one subpackage per model family, plus the layers and loaders they share."""
