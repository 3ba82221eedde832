"""A safetensors file read with plain reads, tensor by tensor, into memory the caller keeps.

safetensors' own `safe_open` maps the whole file: every page a read touches stays in this
process's resident set while the file is open (measured on a 0.6 GB checkpoint: +0.67x of the
weights on top of the weights themselves, the largest shard). Reading each tensor with `pread`
straight into the tensor that is kept costs exactly the weights, plus one tensor in flight when
it is cast. The interface is the part of `safe_open`'s that the loaders use (`keys`,
`get_tensor`, `get_slice(...)[lo:hi]` / `[:, lo:hi]`, `get_shape`), so a tensor-parallel rank's
`TensorReader` works on either. Format: an 8-byte little-endian header length, a JSON header
({name: {dtype, shape, data_offsets}}), then the data.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import struct
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
MAX_HEADER = 100 * 2**20  # safetensors' own limit


class SafetensorsFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._entries, self._data_start = self._read_header()
        except BaseException:
            os.close(self._fd)
            raise

    def _read_header(self) -> tuple[dict[str, dict], int]:
        size = os.fstat(self._fd).st_size
        raw = os.pread(self._fd, 8, 0)
        length = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if not 0 < length <= min(MAX_HEADER, size - 8):
            raise ValueError(f"model: {self.path} is not a safetensors file (bad header length)")
        try:
            header = json.loads(os.pread(self._fd, length, 8))
        except ValueError:
            raise ValueError(f"model: {self.path}: the safetensors header is not JSON") from None
        header.pop("__metadata__", None)
        data_start = 8 + length
        for key, entry in header.items():
            if entry.get("dtype") not in DTYPES:
                raise ValueError(f"model: {self.path}: {key} has dtype {entry.get('dtype')!r}, "
                                 f"which this loader does not read ({', '.join(DTYPES)})")
            lo, hi = entry["data_offsets"]
            expected = math.prod(entry["shape"]) * DTYPES[entry["dtype"]].itemsize
            if hi - lo != expected or data_start + hi > size:
                raise ValueError(f"model: {self.path}: {key}'s data is truncated or misdescribed "
                                 f"(an interrupted download?)")
        return header, data_start

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def keys(self) -> list[str]:
        return list(self._entries)

    def dtype(self, key: str) -> torch.dtype:
        return DTYPES[self._entries[key]["dtype"]]

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._entries[key]["shape"])

    def get_tensor(self, key: str) -> torch.Tensor:
        out = torch.empty(self.shape(key), dtype=self.dtype(key))
        self._read_into(out, self._entries[key]["data_offsets"][0])
        return out

    def get_slice(self, key: str) -> TensorSlice:
        return TensorSlice(self, key)

    def _read_into(self, out: torch.Tensor, offset: int) -> None:
        """Fill the contiguous tensor `out` from the data section at `offset`."""
        # a writable view of the tensor's own bytes (ctypes: numpy's import would cost more
        # than a small tensor)
        view = memoryview((ctypes.c_ubyte * (out.numel() * out.element_size())).from_address(
            out.data_ptr()))
        done = 0
        while done < len(view):  # pread may return less than asked on large reads
            got = os.preadv(self._fd, [view[done:]], self._data_start + offset + done)
            if got <= 0:
                raise ValueError(f"model: {self.path} ended early (an interrupted download?)")
            done += got


class TensorSlice:
    """`[lo:hi]` reads a block of rows (one read); `[:, lo:hi]` a block of columns of a 2-D
    tensor (one read per row): only the slice's bytes are read."""

    def __init__(self, file: SafetensorsFile, key: str) -> None:
        self.file, self.key = file, key

    def get_shape(self) -> list[int]:
        return list(self.file.shape(self.key))

    def __getitem__(self, index) -> torch.Tensor:
        shape = self.file.shape(self.key)
        dtype = self.file.dtype(self.key)
        start = self.file._entries[self.key]["data_offsets"][0]
        if isinstance(index, slice):
            lo, hi = _bounds(index, shape[0])
            row = math.prod(shape[1:]) * dtype.itemsize
            out = torch.empty((hi - lo, *shape[1:]), dtype=dtype)
            self.file._read_into(out, start + lo * row)
            return out
        if (isinstance(index, tuple) and len(index) == 2 and len(shape) == 2
                and index[0] == slice(None)):
            lo, hi = _bounds(index[1], shape[1])
            out = torch.empty((shape[0], hi - lo), dtype=dtype)
            for r in range(shape[0]):
                self.file._read_into(out[r], start + (r * shape[1] + lo) * dtype.itemsize)
            return out
        raise TypeError(f"{self.key}: only [lo:hi] and [:, lo:hi] slices are read, got {index!r}")


def _bounds(index: slice, length: int) -> tuple[int, int]:
    lo, hi, step = index.indices(length)
    if step != 1:
        raise TypeError("strided slices are not read")
    return lo, max(lo, hi)
