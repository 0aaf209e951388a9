"""The data-only format between the parent and a sandbox worker: JSON plus raw byte blobs.

A frame is ``<II`` (header length, blob bytes), a JSON header and the blobs it indexes. Values
are JSON types as they are; tuples, sets, bytes, dicts with other keys and tensors are tagged
objects (``{"__go__": tag, ...}``); tensors and arrays travel as safetensors bytes. Nothing is
ever pickled, so decoding what a worker sends runs no code of its choosing.

This module imports only the standard library: the worker loads it without graphopt.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

TAG = "__go__"
MAX_DEPTH = 100
_PREFIX = struct.Struct("<II")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_loads = json.loads


class WireError(ValueError):
    """A value is not data that may cross between the parent and a worker."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where


class TensorBlob(bytes):
    """Safetensors bytes of one tensor; its type tells the pool that torch must be loaded."""


class PeerGone(EOFError):
    """The other end closed its pipe (a worker that died, a parent that went away)."""


class Deadline(TimeoutError):
    """The frame did not arrive before the deadline."""


# -- values ---------------------------------------------------------------------------------
def encode(value: Any, blobs: list[bytes], where: str = "value", depth: int = 0) -> Any:
    """``value`` as JSON-ready data, appending tensor and bytes payloads to ``blobs``.

    Types are checked exactly (``type(x) is list``): a subclass could run its own methods while
    being encoded, and the worker encodes what untrusted code returned.
    """
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int or kind is float:
        return value
    if depth >= MAX_DEPTH:
        raise WireError(f"{where} is nested deeper than {MAX_DEPTH} levels", where=where)
    depth += 1
    if kind is list:
        return [encode(v, blobs, f"{where}[{i}]", depth) for i, v in enumerate(value)]
    if kind is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: encode(v, blobs, f"{where}[{k!r}]", depth) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode(k, blobs, f"{where} key", depth),
                                    encode(v, blobs, f"{where}[{k!r}]", depth)] for k, v in value.items()]}
    if kind is tuple:
        return {TAG: "tuple", "v": [encode(v, blobs, f"{where}[{i}]", depth) for i, v in enumerate(value)]}
    if kind is set or kind is frozenset:
        return {TAG: kind.__name__, "v": [encode(v, blobs, f"{where} item", depth) for v in value]}
    if kind is bytes or kind is bytearray:
        blobs.append(bytes(value))
        return {TAG: kind.__name__, "b": len(blobs) - 1}
    module = kind.__module__
    if module == "torch" and kind.__name__ in ("Tensor", "Parameter"):
        return _encode_tensor(value, blobs, where)
    if module == "numpy":
        return _encode_numpy(value, blobs, where)
    raise WireError(f"{where} is a {kind.__module__}.{kind.__qualname__}, which is not data "
                    "(JSON types, tuple, set, bytes, torch tensor or numpy array)", where=where)


def decode(data: Any, blobs: list[bytes], depth: int = 0) -> Any:
    """The value ``encode`` wrote; raises ``WireError`` on anything malformed."""
    kind = type(data)
    if kind is list or kind is dict:
        if depth >= MAX_DEPTH:
            raise WireError(f"data nested deeper than {MAX_DEPTH} levels")
        depth += 1
        if kind is list:
            return [decode(v, blobs, depth) for v in data]
        tag = data.get(TAG)
        if tag is None:
            return {k: decode(v, blobs, depth) for k, v in data.items()}
        try:
            if tag == "tuple":
                return tuple(decode(v, blobs, depth) for v in data["v"])
            if tag == "dict":
                return {decode(k, blobs, depth): decode(v, blobs, depth) for k, v in data["v"]}
            if tag == "set":
                return {decode(v, blobs, depth) for v in data["v"]}
            if tag == "frozenset":
                return frozenset(decode(v, blobs, depth) for v in data["v"])
            if tag == "bytes":
                return blobs[data["b"]]
            if tag == "bytearray":
                return bytearray(blobs[data["b"]])
            if tag == "tensor":
                return _decode_tensor(blobs[data["b"]])
            if tag == "ndarray":
                return _decode_numpy(blobs[data["b"]])
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise WireError(f"malformed {tag!r} value: {err}") from err
        raise WireError(f"unknown tag {tag!r}")
    return data


def _encode_tensor(value: Any, blobs: list[bytes], where: str) -> Any:
    from safetensors.torch import save  # only once a tensor crosses: torch is heavy

    try:
        blobs.append(TensorBlob(save({"t": value.detach().cpu().contiguous()})))
    except Exception as err:
        raise WireError(f"{where}: tensor cannot be written as safetensors ({err})", where=where) from err
    return {TAG: "tensor", "b": len(blobs) - 1}


def _decode_tensor(blob: bytes) -> Any:
    from safetensors.torch import load

    return load(blob)["t"]


def _encode_numpy(value: Any, blobs: list[bytes], where: str) -> Any:
    import numpy

    if isinstance(value, numpy.generic):
        item = value.item()
        if type(item) in (bool, int, float, str):
            return item
    elif type(value) is numpy.ndarray and value.dtype.kind in "biuf":
        from safetensors.numpy import save

        blobs.append(save({"t": numpy.ascontiguousarray(value)}))
        return {TAG: "ndarray", "b": len(blobs) - 1}
    raise WireError(f"{where} is a numpy {type(value).__name__} of dtype {getattr(value, 'dtype', '?')}, "
                    "which is not data", where=where)


def _decode_numpy(blob: bytes) -> Any:
    from safetensors.numpy import load

    return load(blob)["t"]


# -- frames ---------------------------------------------------------------------------------
def pack(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    """One frame: the header (which lists the blob sizes) and the blobs."""
    header["blobs"] = [len(b) for b in blobs]
    text = _dumps(header).encode()
    return b"".join((_PREFIX.pack(len(text), sum(header["blobs"])), text, *blobs))


def dumps(value: Any) -> str:
    """Compact JSON of already-encoded data."""
    return _dumps(value)


def write_frame(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int, *, deadline: float | None = None, max_bytes: int = 1 << 62
               ) -> tuple[dict[str, Any], list[bytes]]:
    """The next frame from ``fd``: ``(header, blobs)``.

    Raises ``PeerGone`` at end of file, ``Deadline`` past ``deadline`` (a ``time.monotonic()``
    value) and ``WireError`` for a frame over ``max_bytes`` or one that is not valid data.
    """
    head, blob_size = _PREFIX.unpack(_read_exact(fd, _PREFIX.size, deadline))
    if head + blob_size > max_bytes:
        raise WireError(f"frame of {head + blob_size} bytes is over the limit of {max_bytes}")
    try:
        header = _loads(_read_exact(fd, head, deadline))
    except (ValueError, RecursionError) as err:
        raise WireError(f"frame header is not valid JSON ({type(err).__name__})") from err
    sizes = header.get("blobs") if type(header) is dict else None
    if type(sizes) is not list or any(type(s) is not int or s < 0 for s in sizes) or sum(sizes) != blob_size:
        raise WireError("frame header does not describe its blobs")
    payload = _read_exact(fd, blob_size, deadline) if blob_size else b""
    blobs, start = [], 0
    for size in sizes:
        blobs.append(payload[start:start + size])
        start += size
    return header, blobs


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    poller = None
    while size:
        if deadline is not None:
            if poller is None:  # poll, not select: descriptors may be past FD_SETSIZE
                poller = select.poll()
                poller.register(fd, select.POLLIN)
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000) + 1)):
                raise Deadline("no reply before the deadline")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise PeerGone("the other end closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

