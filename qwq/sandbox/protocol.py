"""Framing between the host process, the fork server and the per-session supervisor.

Messages are JSON objects prefixed by a 4-byte big-endian length. Bytes travel as base64 strings. Standard library
only: the fork server imports this module with `python -I -S`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

MAX_MESSAGE_BYTES = 512 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer closed the channel or sent something that is not a framed JSON object."""


def send_message(sock: socket.socket, message: dict) -> None:
    payload = json.dumps(message, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte frame limit")
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("channel closed by the peer")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit")
    try:
        message = json.loads(_recv_exactly(sock, size))
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def send_fd(control: socket.socket, fd: int, note: bytes = b"s") -> None:
    """Pass an open descriptor to the fork server (SCM_RIGHTS)."""
    socket.send_fds(control, [note], [fd])


def recv_fd(control: socket.socket) -> int | None:
    """Receive one descriptor; None when the host closed the control channel."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(control, 16, 4)
    except OSError:
        return None
    if not data and not fds:
        return None
    for extra in fds[1:]:
        os.close(extra)
    return fds[0] if fds else -1
