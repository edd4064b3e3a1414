"""A checkpoint's zip members: only the expected ones read, each checked before its data is inflated."""

from __future__ import annotations

import collections
import json
import math
import zipfile
import zlib

import numpy as np

from ... import memory
from ...errors import XpnetValueError
from ..atomic import reason
from ..npy import NPY_HEADER_MAX, _read_into, read_npy_header
from .meta import Layout
from .schema import DTYPES, META_MAX_BYTES, META_MAX_DEPTH, bad, json_depth, short


class Reader:
    """Reads the expected members of an open ``.npz``, checking each before its data."""

    def __init__(self, path: str, archive: zipfile.ZipFile, size: int):
        self.path, self.archive, self.size = path, archive, size
        self.counts = collections.Counter(archive.namelist())

    def meta(self):
        """The JSON meta: bounded in size and nesting, UTF-8, parsed."""
        if "meta.npy" not in self.counts:
            raise XpnetValueError(f"{self.path!r} is an .npz but not an xpnet checkpoint (no 'meta' entry)")
        info = self._entry("meta")
        if info.file_size > META_MAX_BYTES + NPY_HEADER_MAX:
            raise self._meta_too_large(info.file_size)
        raw = self.read("meta", None, ("uint8",)).tobytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad(self.path, f"its meta is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        depth = json_depth(raw)
        if depth > META_MAX_DEPTH:
            raise bad(self.path, f"its meta is JSON nested more than {META_MAX_DEPTH} levels deep ({depth})")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise bad(self.path, f"its meta is not valid JSON ({' '.join(str(exc).split())[:200]})") from None

    def _meta_too_large(self, nbytes: int) -> XpnetValueError:
        return bad(self.path, f"its meta entry holds {memory.format_bytes(nbytes)}, larger than the "
                              f"{memory.format_bytes(META_MAX_BYTES)} a checkpoint's meta may be")

    def arrays(self, layout: Layout) -> dict:
        """Every array ``layout`` calls for, read and checked (shape, dtype, finite values)."""
        out = {name: self.read(name, shape, (layout.dtype,)) for name, shape in layout.shapes().items()}
        for i in range(len(layout.sizes) - 2 if layout.batch_norm else 0):
            if np.any(out[f"bn_var{i}"] < 0):
                raise bad(self.path, f"the array 'bn_var{i}' holds negative variances")
        for name in layout.optimizer_names:
            member = f"optimizer/{name}"
            out[member] = self.read(member, layout.optimizer_shape(name), DTYPES,
                                    any_of=[()] + layout.parameter_shapes())
        if layout.standardize:
            for name in ("scaler_mean", "scaler_scale"):
                out[name] = self.read(name, (layout.sizes[0],), DTYPES).astype(np.float64, copy=False)
            if np.any(out["scaler_scale"] == 0):
                raise bad(self.path, "the array 'scaler_scale' holds zeros (a scale divides the inputs)")
        return out

    def _entry(self, name: str) -> zipfile.ZipInfo:
        """The zip entry of member ``name``: present once, not encrypted, stored or deflated, within the file."""
        entry = f"{name}.npy"
        count = self.counts.get(entry, 0)
        if count == 0:
            raise bad(self.path, f"it has no array {name!r}")
        if count > 1:
            raise bad(self.path, f"the array {name!r} appears more than once")
        info = self.archive.getinfo(entry)
        if info.flag_bits & 0x1:
            raise bad(self.path, f"the array {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise bad(self.path, f"the array {name!r} uses zip compression method {info.compress_type} (an .npz "
                                 "is stored or deflated)")
        if info.header_offset + info.compress_size > self.size:
            raise bad(self.path, f"the array {name!r} claims more bytes than the file has (is it truncated?)")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise bad(self.path, f"the array {name!r} has inconsistent zip sizes")
        return info

    def read(self, name: str, shape: tuple | None, dtypes: tuple, any_of=None) -> np.ndarray:
        """Member ``name`` as a NumPy array, refused unless its header declares one of
        ``dtypes`` and ``shape`` (None: 1-D for the meta, or one of ``any_of``) and its
        zip entry is exactly that size; its data is read only then."""
        info = self._entry(name)
        where = f"{self.path!r} is not a valid xpnet checkpoint: the array {name!r}"
        try:
            with self.archive.open(info) as stream:
                header = read_npy_header(stream, where, info.file_size, exact=True)
                self._check_header(name, header.shape, header.dtype, shape, dtypes, any_of)
                data = self._data(name, stream, header.dtype, math.prod(header.shape))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
                ValueError) as exc:
            if isinstance(exc, XpnetValueError):
                raise
            raise bad(self.path, f"the array {name!r} cannot be read ({reason(exc)})") from None
        array = data.reshape(header.shape, order="F" if header.fortran else "C")
        if header.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise bad(self.path, f"the array {name!r} holds NaN or Inf (its values must be finite)")
        return array

    def _check_header(self, name, declared, dtype, shape, dtypes, any_of) -> None:
        if dtype.fields is not None or dtype.subdtype is not None:
            raise bad(self.path, f"the array {name!r} holds {short(f'records {dtype.descr}')}; it must hold "
                                 f"{' or '.join(dtypes)}")
        if dtype.newbyteorder("=").name not in dtypes:
            raise bad(self.path, f"the array {name!r} holds {dtype.name} numbers; it must hold {' or '.join(dtypes)}")
        if shape is not None:
            if declared != shape:
                raise bad(self.path, f"the array {name!r} has shape {declared}; the architecture needs {shape}")
        elif any_of is not None:
            if declared not in any_of:
                raise bad(self.path, f"the array {name!r} has shape {declared}, which is no parameter's shape")
        elif len(declared) != 1:
            raise bad(self.path, f"the array {name!r} has shape {declared}; it must be 1-D (UTF-8 bytes)")
        elif declared[0] > META_MAX_BYTES:
            raise self._meta_too_large(declared[0])

    def _data(self, name: str, stream, dtype, count: int) -> np.ndarray:
        """``count`` numbers of ``dtype`` from ``stream``, in native byte order; the zip's CRC checked."""
        out = np.empty(count, dtype=dtype)
        try:
            _read_into(stream, out)
        except XpnetValueError:
            raise bad(self.path, f"the array {name!r} is truncated") from None
        stream.read(1)  # reaching the end makes zipfile check the CRC
        if not dtype.isnative:
            out = out.byteswap().view(dtype.newbyteorder("="))
        return out
