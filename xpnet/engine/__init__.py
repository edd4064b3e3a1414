"""How a pass runs fast: NumPy's primitives, threads and lanes, the row-chunked full-batch driver
and the optional whole-pass kernels behind ``supports()``."""
