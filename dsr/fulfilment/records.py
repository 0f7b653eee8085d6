"""What of a found record may be shown, decided once for every connector from the data map:
fields never disclosed (§7024(d)) are replaced by a "held, not shown" marker and listed as
withheld; a portability copy keeps only what the person provided (Art 20(1)); CCPA requests keep
only records dated inside the period the form recorded (§7024(h), [policy] 12 months); fields that
may hold other people's data (Art 15(4)) have other people's email addresses and phone numbers
redacted. Values become JSON-ready (ISO dates, text for decimals)."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from dsr.fulfilment.categories import category_label
from dsr.fulfilment.datamap import Collection, System

HELD_NOT_SHOWN = "held, not shown"
REDACTED = "[redacted]"
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"(?<![\w])\+?\d[\d ().-]{7,}\d(?![\w])")


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value


def _moment(value: Any) -> datetime | None:
    """A record's date as an aware datetime (naive values are taken as UTC), or None if unreadable."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                value = date.fromisoformat(value[:10])
            except ValueError:
                return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    return None


@dataclass
class RecordPolicy:
    system: System
    portable_only: bool = False
    since: datetime | None = None
    own_identities: frozenset[str] = frozenset()
    withheld: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    unmapped: set[tuple[str, str]] = field(default_factory=set)

    def _redact_others(self, text: str) -> tuple[str, bool]:
        changed = False

        def replace(match: re.Match) -> str:
            nonlocal changed
            if match.group(0).lower() in self.own_identities:
                return match.group(0)
            changed = True
            return REDACTED

        text = EMAIL_RE.sub(replace, text)
        text = PHONE_RE.sub(replace, text)
        return text, changed

    def _withhold(self, collection: Collection, name: str, category: str, reason: str) -> None:
        self.withheld.setdefault(
            (collection.name, name),
            {"collection": collection.name, "field": name, "category": category_label(category), "reason": reason},
        )

    def apply(self, collection: Collection, record: dict[str, Any]) -> dict[str, Any] | None:
        """The record as it may be shown, or None when it falls outside the look-back."""
        if self.since and collection.dated_by:
            moment = _moment(record.get(collection.dated_by))
            if moment is not None and moment < self.since:
                return None
        shown: dict[str, Any] = {}
        for name, value in record.items():
            spec = collection.field(name)
            if spec is None:
                self.unmapped.add((collection.name, name))
                if not self.portable_only:
                    shown[name] = json_value(value)
                continue
            if self.portable_only and not spec.provided:
                continue
            if spec.never_disclose:
                if value not in (None, ""):
                    self._withhold(collection, name, spec.category, "never disclosed (CCPA §7024(d)); held")
                    shown[name] = HELD_NOT_SHOWN
                else:
                    shown[name] = None
                continue
            value = json_value(value)
            if spec.others_data and isinstance(value, str):
                value, changed = self._redact_others(value)
                if changed:
                    self._withhold(
                        collection, name, spec.category, "other people's contact details redacted (GDPR Art 15(4))"
                    )
            shown[name] = value
        return shown

    def withheld_list(self) -> list[dict[str, str]]:
        return [self.withheld[key] for key in sorted(self.withheld)]
