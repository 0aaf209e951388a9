"""The data-only wire between parent and worker: what round-trips, and what is refused."""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import OrderedDict

import numpy
import pytest
import torch

from graphopt.runtime.sandbox import wire


def round_trip(value):
    blobs: list[bytes] = []
    frame = wire.pack({"value": wire.encode(value, blobs)}, blobs)
    read, write = os.pipe()
    try:
        wire.write_frame(write, frame)
        header, got = wire.read_frame(read, deadline=None)
    finally:
        os.close(read)
        os.close(write)
    return wire.decode(header["value"], got)


@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, float("inf"), "text", [1, [2, "x"]], {"a": {"b": [None]}},
    (1, (2, 3)), {1: "int key", (2, 3): "tuple key"}, {"__go__": "a user key"}, {1, 2}, frozenset({"a"}),
    b"\x00bytes", bytearray(b"ab"),
])
def test_data_round_trips_with_its_type(value):
    got = round_trip(value)
    assert got == value and type(got) is type(value)


def test_tensors_and_arrays_round_trip_through_safetensors():
    tensor = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    got = round_trip({"t": tensor, "a": numpy.arange(4, dtype=numpy.int32), "s": numpy.float32(1.5)})
    assert torch.equal(got["t"], tensor) and got["t"].dtype == torch.float64
    assert numpy.array_equal(got["a"], numpy.arange(4)) and got["s"] == 1.5


def test_nan_crosses_as_nan():
    assert numpy.isnan(round_trip(float("nan")))


@pytest.mark.parametrize(("value", "message"), [
    (object(), r"value\[0\] is a builtins\.object, which is not data"),
    (OrderedDict(a=1), r"value\[0\] is a collections\.OrderedDict"),
    (type("Text", (str,), {})("x"), r"is a .*Text, which is not data"),
    (numpy.array(["a"]), r"numpy ndarray of dtype <U1"),
])
def test_anything_else_is_refused_naming_where_it_sits(value, message):
    with pytest.raises(wire.WireError, match=message):
        wire.encode([value], [], "value")


def test_nesting_is_bounded_both_ways():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError, match="nested deeper than 100 levels"):
        wire.encode(deep, [])
    with pytest.raises(wire.WireError, match="nested deeper than 100 levels"):
        wire.decode(deep, [])


@pytest.mark.parametrize(("header", "message"), [
    (b"{not json", "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (b'{"blobs": [5]}', "does not describe its blobs"),
    (b'{"blobs": "x"}', "does not describe its blobs"),
])
def test_malformed_frames_are_wire_errors(header, message):
    read, write = os.pipe()
    frame = struct.pack("<II", len(header), 0) + header
    writer = threading.Thread(target=wire.write_frame, args=(write, frame), daemon=True)
    writer.start()  # a frame larger than the pipe's buffer needs a reader at the same time
    try:
        with pytest.raises(wire.WireError, match=message):
            wire.read_frame(read, deadline=None)
    finally:
        writer.join()
        os.close(read)
        os.close(write)


def test_oversized_frames_and_unknown_tags_are_refused():
    read, write = os.pipe()
    try:
        os.write(write, struct.pack("<II", 10, 1 << 30))
        with pytest.raises(wire.WireError, match="over the limit of 1024"):
            wire.read_frame(read, max_bytes=1024)
    finally:
        os.close(read)
        os.close(write)
    with pytest.raises(wire.WireError, match="unknown tag 'pickle'"):
        wire.decode({"__go__": "pickle", "v": "..."}, [])
    with pytest.raises(wire.WireError, match="malformed 'bytes' value"):
        wire.decode({"__go__": "bytes", "b": 3}, [])


def test_reading_past_the_deadline_and_from_a_closed_pipe():
    read, write = os.pipe()
    with pytest.raises(wire.Deadline):
        wire.read_frame(read, deadline=time.monotonic() + 0.05)
    os.close(write)
    with pytest.raises(wire.PeerGone):
        wire.read_frame(read)
    os.close(read)
