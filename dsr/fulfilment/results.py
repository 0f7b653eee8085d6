"""Each system's records, between the search and the package: JSON lines in one encrypted file
per system run under private storage (never a served path), written as the connector streams
them and read back streaming when the package is built. Purged with the run's held copies."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from dsr.fulfilment.crypto import EncryptedWriter, decrypted_chunks, token_new
from dsr.fulfilment.datamap import System
from dsr.fulfilment.records import RecordPolicy

RESULTS = b"results"


def fulfilment_dir() -> Path:
    return Path(settings.DSR_PRIVATE_FILES_DIR) / "fulfilment"


def held_path(name: str) -> Path:
    """The absolute path of a held file by its stored name, refusing anything outside the folder."""
    base = fulfilment_dir().resolve()
    path = (base / name).resolve()
    if base not in path.parents:
        raise ValueError(f"{name!r} is outside the fulfilment folder")
    return path


def held_delete(name: str) -> None:
    if name:
        try:
            os.unlink(held_path(name))
        except FileNotFoundError:
            pass


class ResultSink:
    """A connector's sink: applies the record policy, counts what is kept, encrypts as it goes."""

    def __init__(self, *, run_id: int, system: System, policy: RecordPolicy):
        self.system = system
        self.policy = policy
        self.name = f"results/{run_id}/{system.name}-{token_new()}.jsonl.enc"
        path = held_path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._raw = open(path, "xb")  # noqa: SIM115 - closed in close()
        os.chmod(path, 0o600)
        self._writer = EncryptedWriter(self._raw, purpose=RESULTS)
        self.counts: dict[str, int] = {c.name: 0 for c in system.collections}

    def write(self, collection: str, record: dict[str, Any]) -> None:
        shown = self.policy.apply(self.system.collection(collection), record)
        if shown is None:
            return
        self.counts[collection] = self.counts.get(collection, 0) + 1
        self._writer.write(json.dumps({"c": collection, "r": shown}, ensure_ascii=False).encode() + b"\n")

    def close(self) -> None:
        self._writer.close()
        self._raw.close()

    def discard(self) -> None:
        self.close()
        held_delete(self.name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def result_records(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection, record) for each record of a stored result, in the order written."""
    with open(held_path(name), "rb") as raw:
        pending = b""
        for chunk in decrypted_chunks(raw, purpose=RESULTS):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                item = json.loads(line)
                yield item["c"], item["r"]
        if pending.strip():
            item = json.loads(pending)
            yield item["c"], item["r"]
