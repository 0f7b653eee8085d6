"""Encryption at rest for what fulfilment holds (per-system results, access packages): AES-256-GCM
in 64 KiB chunks, so a file of any size is written and read streaming, never whole in memory, and
each chunk is authenticated before a byte of it is used. A chunk's nonce is a random file prefix
plus the chunk's number, and the last chunk is marked in its associated data, so chunks cannot be
reordered, dropped or the file cut short without the read failing. The key (DSR_PACKAGE_KEY) is
never stored in the database."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

MAGIC = b"DSRE1"
CHUNK = 64 * 1024
TAG = 16


class DecryptionFailed(Exception):
    """The file was changed, cut short, or written under another key."""


def _key(purpose: bytes) -> bytes:
    # One secret, one derived key per purpose (results, packages), so the two never share a key.
    return hashlib.sha256(b"dsr-fulfilment\x00" + purpose + b"\x00" + settings.DSR_PACKAGE_KEY.encode()).digest()


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


class EncryptedWriter:
    """A write-only file object: what is written is encrypted chunk by chunk into `raw`."""

    def __init__(self, raw: BinaryIO, *, purpose: bytes):
        self.raw = raw
        self.aead = AESGCM(_key(purpose))
        self.prefix = os.urandom(4)
        self.buffer = bytearray()
        self.index = 0
        self.closed = False
        raw.write(MAGIC + self.prefix)

    def _nonce(self) -> bytes:
        return self.prefix + struct.pack(">Q", self.index)

    def _flush_chunk(self, data: bytes, last: bool) -> None:
        self.raw.write(self.aead.encrypt(self._nonce(), data, _aad(self.index, last)))
        self.index += 1

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:
            self._flush_chunk(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._flush_chunk(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.raw.flush()
            self.closed = True

    def __enter__(self) -> EncryptedWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decrypted_chunks(raw: BinaryIO, *, purpose: bytes) -> Iterator[bytes]:
    """The plaintext of an EncryptedWriter's file, chunk by chunk, each checked before it is given."""
    header = raw.read(len(MAGIC) + 4)
    if len(header) != len(MAGIC) + 4 or not header.startswith(MAGIC):
        raise DecryptionFailed("not an encrypted fulfilment file")
    prefix = header[len(MAGIC) :]
    aead = AESGCM(_key(purpose))
    index = 0
    current = raw.read(CHUNK + TAG)
    while True:
        following = raw.read(CHUNK + TAG)
        last = not following
        try:
            yield aead.decrypt(prefix + struct.pack(">Q", index), current, _aad(index, last))
        except InvalidTag:
            raise DecryptionFailed(f"chunk {index} does not authenticate") from None
        if last:
            return
        current, index = following, index + 1


def token_digest(token: str) -> str:
    """A keyed hash of a bearer token (task links, callback tokens, download grants): the database
    holds only this, so a copy of it opens nothing."""
    return hashlib.sha256(
        b"dsr-fulfilment-token\x00" + settings.SECRET_KEY.encode() + b"\x00" + token.encode()
    ).hexdigest()


def token_new() -> str:
    return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
