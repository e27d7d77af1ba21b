"""Scalars from TensorBoard event files (what sd-scripts writes under `logging_dir`), read without TensorBoard.

sd-scripts logs `loss/epoch_average` once per epoch (step = the epoch number), with a validation set also
`loss/validation/epoch_average` (before that epoch's checkpoint is saved; accelerate flushes every log), and
`loss/current`, `loss/average` per step, to `<logging_dir>/<timestamp>/network_train/events.out.tfevents.*`. The review only
needs those few floats; the `tensorboard` package (with protobuf and grpcio) is not a dependency of bespoke,
and the format is small and stable, so this module reads it directly:

- TFRecord framing: uint64 length, uint32 masked CRC of the length, the payload, uint32 masked CRC of the
  payload (little-endian). The CRCs are not verified (CRC32-C is not in the standard library); a record cut
  short by a killed trainer ends the file instead.
- The payload is an `Event` protobuf: step (field 2, varint) and summary (field 5) whose values (field 1) carry
  a tag (1) and either simple_value (2, float32) or a tensor (8) with float_val (5) or tensor_content (4).
"""

from __future__ import annotations

import struct
from pathlib import Path

EPOCH_TAG = "loss/epoch_average"
VALIDATION_TAG = "loss/validation/epoch_average"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of one protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[pos:pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            yield number, wire, data[pos:pos + size]
            pos += size
        elif wire == 5:
            yield number, wire, data[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _tensor_float(data: bytes) -> float | None:
    for number, wire, value in _fields(data):
        if number == 5 and wire == 2 and len(value) >= 4:  # packed float_val
            return float(struct.unpack_from("<f", value)[0])
        if number == 5 and wire == 5:
            return float(struct.unpack("<f", value)[0])
        if number == 4 and wire == 2 and len(value) == 4:  # tensor_content of one float32
            return float(struct.unpack("<f", value)[0])
    return None


def _values(summary: bytes):
    """(tag, float) of each scalar value in a Summary message."""
    for number, wire, value in _fields(summary):
        if number != 1 or wire != 2:
            continue
        tag, scalar = None, None
        for vnum, vwire, vval in _fields(value):
            if vnum == 1 and vwire == 2:
                tag = bytes(vval).decode("utf-8", errors="replace")
            elif vnum == 2 and vwire == 5:
                scalar = float(struct.unpack("<f", vval)[0])
            elif vnum == 8 and vwire == 2:
                scalar = _tensor_float(vval)
        if tag is not None and scalar is not None:
            yield tag, scalar


def _records(data: bytes):
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        if start + length + 4 > len(data):
            return  # cut short: the trainer was still writing or was killed
        yield data[start:start + length]
        pos = start + length + 4


def read_scalars(path: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in one event file, in file order. ValueError when it is not one."""
    data = Path(path).read_bytes()
    out = []
    for record in _records(data):
        step, summary = 0, None
        for number, wire, value in _fields(record):
            if number == 2 and wire == 0:
                step = value
            elif number == 5 and wire == 2:
                summary = value
        if summary is not None:
            out += [(tag, step, scalar) for tag, scalar in _values(summary)]
    return out


def event_files(folder: Path) -> list[Path]:
    """Every event file below `folder` (one per trainer launch), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.rglob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime, str(p)))


def epoch_scalars(folder: Path, tags: tuple[str, ...]) -> dict[str, dict[int, float]]:
    """{tag: {epoch: value}} from every event file below `folder`; a resumed run's later launch wins for the
    epochs it logged again. Unreadable files are skipped."""
    found: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for path in event_files(folder):
        try:
            scalars = read_scalars(path)
        except (OSError, ValueError, struct.error):
            continue
        for name, step, value in scalars:
            if name in found:
                found[name][int(step)] = value
    return {tag: dict(sorted(values.items())) for tag, values in found.items()}


def epoch_losses(folder: Path, tag: str = EPOCH_TAG) -> dict[int, float]:
    """{epoch: loss} from the `tag` scalars of every event file below `folder` (see epoch_scalars)."""
    return epoch_scalars(folder, (tag,))[tag]
