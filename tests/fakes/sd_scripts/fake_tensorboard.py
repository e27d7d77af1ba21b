"""The fake trainer's TensorBoard event file: what sd-scripts (through accelerate's tracker) writes, in the real
format, so bespoke reads the fake's losses exactly as it reads the real trainer's.

sd-scripts puts it at `{logging_dir}/{log_prefix}{%Y%m%d%H%M%S}/network_train/events.out.tfevents.<t>.<host>.<pid>.0`
(train_util.py prepare_accelerator, train_network.py init_trackers) and flushes after every log (accelerate's
TensorBoardTracker.log). Each record is TFRecord-framed (length, masked CRC-32C of the length, an `Event`
protobuf, masked CRC-32C of it); the first event carries the file version, each later one a `Summary` of one
scalar (`simple_value`) at a step (per epoch: the epoch number). No tensorboard import: the fake runs anywhere.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _event(step: int, *, tag: str | None = None, value: float | None = None, version: str | None = None) -> bytes:
    body = _field(1, 1, struct.pack("<d", time.time())) + _field(2, 0, _varint(step))
    if version is not None:
        body += _field(3, 2, version.encode())
    if tag is not None and value is not None:
        scalar = _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value))
        body += _field(5, 2, _field(1, 2, scalar))
    return body


class EventWriter:
    """One launch's event file (made when the first scalar is written)."""

    def __init__(self, logging_dir: str, log_prefix: str | None):
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
        self.folder = Path(logging_dir) / f"{log_prefix or ''}{stamp}" / "network_train"
        self.path: Path | None = None

    def _record(self, payload: bytes) -> None:
        assert self.path is not None
        length = struct.pack("<Q", len(payload))
        with open(self.path, "ab") as handle:
            handle.write(length + struct.pack("<I", _masked(length)) + payload + struct.pack("<I", _masked(payload)))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = self.folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.0"
            self._record(_event(0, version="brain.Event:2"))
        for tag, value in values.items():
            self._record(_event(step, tag=tag, value=float(value)))
