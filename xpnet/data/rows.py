"""Host rows read in bounded chunks: moved to :mod:`xpnet.engine.rows` (below training, which reads
them); the names stay importable from here."""

from ..engine.rows import BLOCK_BYTES, HostRows, block_rows, spans

__all__ = ["BLOCK_BYTES", "HostRows", "block_rows", "spans"]
