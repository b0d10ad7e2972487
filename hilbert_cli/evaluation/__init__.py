"""Cross-validation folds, metrics, the evaluation grid and its report."""
