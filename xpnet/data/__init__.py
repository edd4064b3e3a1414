"""Data on the host: built-in datasets, class labels and tasks, standardization and held-out splits."""
