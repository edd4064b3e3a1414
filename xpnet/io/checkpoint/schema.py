"""The checkpoint format's names and limits, shared by the writer and the loader."""

from __future__ import annotations

import re

import numpy as np

from ...errors import XpnetValueError

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
META_MAX_BYTES = 64 << 20  # a meta entry larger than this is refused (and never written)
META_MAX_DEPTH = 64  # JSON nesting deeper than this is refused (xpnet's own meta nests 4 deep)
MAX_EPOCHS = 2**63 - 1
MAX_LAYER_SIZE = 2**62  # beyond any memory; keeps the arithmetic on sizes in range
DTYPES = ("float32", "float64")
BN_FIELDS = ("gamma", "beta", "mean", "var")  # batch norm's arrays: bn_<field><i>
MEMBER_NAME = re.compile(r"[^\x00/\\]{1,200}(/[^\x00/\\]{1,200})*")  # an optimizer array's name


def json_depth(text: bytes) -> int:
    """How deeply ``text`` (JSON) nests arrays and objects, strings left out (no parsing, so
    a hostile depth is measured without recursion)."""
    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", text, flags=re.DOTALL)
    codes = np.frombuffer(bare, dtype=np.uint8)
    if codes.size == 0:
        return 0
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.max(np.cumsum(step), initial=0))


def bad(path: str, what: str) -> XpnetValueError:
    """The one error for a malformed checkpoint: it names the file and what is wrong."""
    return XpnetValueError(f"{path!r} is not a valid xpnet checkpoint: {what}")


def short(value) -> str:
    """A hostile value shown in at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
