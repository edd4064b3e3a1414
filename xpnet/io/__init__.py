"""Files: data tables (CSV, ``.npy``, ``.npz``) read safely and in bounded memory, atomic writes, and checkpoints."""
