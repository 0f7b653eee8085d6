"""The data map: where the business keeps personal data, read from one reviewable YAML file
(`DSR_DATAMAP`). Loading validates it whole — every problem named by file, line, system, collection
and field — and refuses a map with any, including a collection no identity can reach (a person could
never be found there, so a search would silently miss it). Each loaded map carries its version, the
SHA-256 of the file's bytes, which every fulfilment run records.

The format (README "The data map"):

    systems:
      - name: shop                      # [a-z0-9_], used in the package's file names
        owner: data-team@example.com
        kind: sql                       # sql | django | http | manual
        connection: {dsn_env: SHOP_DSN} # secrets by environment variable name only
        sources: [...]; purposes: [...]; retention: "..."
        recipients: [{name: ..., category: ..., sold: false, shared: false}]
        references: ["customer.id -> orders.customer_id"]
        collections:
          - name: customer
            table: customer             # sql (default: the name); django: model: app.Model
            primary_key: id
            identities: {email: email}  # identity kind -> field
            dated_by: created_at        # the field the look-back filters on
            fields:
              id: none                  # short form: the category ("none": not personal)
              email: {category: identifiers, provided: true}
              ssn: {category: sensitive_personal_information, never_disclose: true}
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from dsr.fulfilment.categories import (
    CCPA_CATEGORIES,
    CONNECTOR_KINDS,
    ERASURE_STRATEGIES,
    FLAG_ACTIONS,
    IDENTITY_KINDS,
)
from dsr.models import CORRECTABLE_FIELDS

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MODEL_RE = re.compile(r"^[a-z_][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
REFERENCE_RE = re.compile(r"^\s*(\w+)\.(\w+)\s*->\s*(\w+)\.(\w+)\s*$")
NOT_PERSONAL = "none"
# A connection setting whose name says it is a secret must be given as an environment variable's
# name (`…_env`), never as the value: the map is reviewed and committed.
SECRET_WORDS = ("password", "secret", "token", "dsn", "key", "credential", "passphrase")

CONNECTION_KEYS: dict[str, dict[str, bool]] = {  # kind -> {setting: required}
    # `retries`: tries after the first when the system fails in a way that may pass (default
    # DSR_FULFILMENT_RETRIES).
    # `erase_dsn_env`: the DSN of a role that may write, for erasure (default: dsn_env's).
    "sql": {"dsn_env": True, "erase_dsn_env": False, "statement_timeout_ms": False, "schema": False, "retries": False},
    "django": {"database": False, "retries": False},
    "http": {
        "url": False,
        "url_env": False,
        "secret_env": True,
        "timeout_seconds": False,
        "retries": False,
    },
    "manual": {"instructions": False, "remind_days": False},
}
SYSTEM_KEYS = {
    "name", "description", "owner", "kind", "connection", "categories", "sources", "purposes",
    "recipients", "retention", "references", "collections",
}  # fmt: skip
COLLECTION_KEYS = {
    "name", "description", "table", "model", "primary_key", "identities", "dated_by", "fields", "flags",
}  # fmt: skip
FIELD_KEYS = {
    "category", "description", "provided", "never_disclose", "others_data", "erasure", "keep_reason", "erasure_value",
    "corrects",
}  # fmt: skip
RECIPIENT_KEYS = {"name", "category", "purpose", "sold", "shared", "contact", "system"}
# A recipient that can be told (issue 11) stands for one of these kinds of system in the map.
RECIPIENT_SYSTEM_KINDS = ("http", "manual")
RECIPIENT_RUN_PREFIX = "recipient:"


@dataclass(frozen=True)
class Field:
    name: str
    category: str  # a CCPA category slug, or "none" for a column that is not personal information
    provided: bool = False  # Art 20: the person provided it (or it was observed), so it is portable
    never_disclose: bool = False  # §7024(d): held, said to be held, never shown
    others_data: bool = False  # Art 15(4): may hold other people's data (chat bodies, call notes)
    erasure: str = ""  # part 2: delete | null | fixed | random | hash | keep
    keep_reason: str = ""
    description: str = ""
    erasure_value: str = ""  # `erasure: fixed`: the constant written (default: by the column's type)
    # Rectification (Art 16, §7023): the intake's correction field this field holds (`full_name`,
    # `phone`, ...); a requested correction of that word is read and applied here.
    corrects: str = ""

    @property
    def personal(self) -> bool:
        return self.category != NOT_PERSONAL


@dataclass(frozen=True)
class Reference:
    """`source.source_field -> target.target_field`: the target's rows whose target_field equals a
    found source row's source_field belong to the same person."""

    source: str
    source_field: str
    target: str
    target_field: str

    def __str__(self) -> str:
        return f"{self.source}.{self.source_field} -> {self.target}.{self.target_field}"


@dataclass(frozen=True)
class Collection:
    name: str
    location: str  # the table (sql), `app_label.Model` (django), the remote name (http, manual)
    primary_key: str
    identities: dict[str, str]  # identity kind -> field
    dated_by: str
    fields: tuple[Field, ...]
    description: str = ""
    # How the system marks a person's rows: action (restrict | opt_out_sale | limit_sensitive) ->
    # the field set to true (issue 11: restriction and opt-outs propagated).
    flags: dict[str, str] = field(default_factory=dict)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field_correcting(self, word: str) -> Field | None:
        """The field that holds the intake's correction field `word` (`corrects: word`), if any."""
        return next((f for f in self.fields if f.corrects and f.corrects == word), None)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({f.category for f in self.fields if f.personal}))


@dataclass(frozen=True)
class Recipient:
    name: str
    category: str
    purpose: str = ""
    sold: bool = False
    shared: bool = False
    # How it is told of a restriction or an opt-out (Art 19, §7026(f)): an address its instruction is
    # sent to, or the http/manual system of the map that stands for it; neither: through the owner
    # of the system that lists it.
    contact: str = ""
    system: str = ""

    @property
    def key(self) -> str:
        """The recipient's name as a system run's name: `recipient:<slug>` (one run per recipient)."""
        slug = re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or "unnamed"
        return f"{RECIPIENT_RUN_PREFIX}{slug[:50]}"


@dataclass(frozen=True)
class System:
    name: str
    owner: str
    kind: str
    connection: dict[str, Any]
    categories: tuple[str, ...]
    sources: tuple[str, ...]
    purposes: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    retention: str
    collections: tuple[Collection, ...]
    references: tuple[Reference, ...]
    description: str = ""

    def collection(self, name: str) -> Collection:
        return next(c for c in self.collections if c.name == name)

    @property
    def sold(self) -> bool:
        return any(r.sold for r in self.recipients)

    @property
    def shared(self) -> bool:
        return any(r.shared for r in self.recipients)

    def references_into(self, name: str) -> tuple[Reference, ...]:
        return tuple(r for r in self.references if r.target == name)

    def search_order(self) -> tuple[Collection, ...]:
        """The collections in the order a search visits them: each after every collection that
        references it (the map is validated acyclic), so one query per collection suffices."""
        return tuple(self.collection(n) for n in _topological(self))


@dataclass(frozen=True)
class DataMap:
    path: str
    version: str  # SHA-256 of the file's bytes
    systems: tuple[System, ...]

    def system(self, name: str) -> System | None:
        return next((s for s in self.systems if s.name == name), None)

    @property
    def system_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.systems)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the map and exactly where: the system, collection and field it is about
    (each "" when it concerns something wider), a detail of the place (`connection`, `reference
    '…'`, `recipient #2`) and the line of the file the YAML puts it on."""

    message: str
    system: str = ""
    collection: str = ""
    field: str = ""
    detail: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        parts = [
            f"system '{self.system}'" if self.system else "",
            f"collection '{self.collection}'" if self.collection else "",
            f"field '{self.field}'" if self.field else "",
            self.detail,
        ]
        return " › ".join(p for p in parts if p)

    def __str__(self) -> str:
        place = self.where
        prefix = f"line {self.line}: " if self.line else ""
        return f"{prefix}{place}: {self.message}" if place else f"{prefix}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "system": self.system,
            "collection": self.collection,
            "field": self.field,
            "detail": self.detail,
            "message": self.message,
        }


class DataMapError(Exception):
    """The map cannot be loaded; `problems` names each place, prefixed by the file."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems
        lines = [f"{path}: {p}" for p in problems]
        super().__init__("The data map does not validate:\n" + "\n".join(lines))


# --- Reading the YAML, with the line of every key --------------------------------------------------


class _PureMapLoader(yaml.SafeLoader):
    """PyYAML's safe loader, which also remembers where each mapping and each key is and which keys
    a mapping repeats (plain PyYAML keeps the last silently: a field named twice would vanish)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.starts: dict[int, int] = {}  # id(mapping) -> its first line
        self.key_lines: dict[int, dict[Any, int]] = {}  # id(mapping) -> key -> line
        self.repeated: dict[int, list[tuple[Any, int, int]]] = {}  # id(mapping) -> (key, first, again)


class _FastMapLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same on libyaml's parser, when PyYAML was built with it: about ten times faster."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.starts: dict[int, int] = {}
        self.key_lines: dict[int, dict[Any, int]] = {}
        self.repeated: dict[int, list[tuple[Any, int, int]]] = {}


def _mapping_construct(loader: Any, node: yaml.MappingNode):
    data: dict[Any, Any] = {}
    yield data
    lines: dict[Any, int] = {}
    # A key written twice in this mapping (not one merged in by `<<: *anchor`, which a later key
    # may override on purpose).
    for key_node, _value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, "a key cannot be a list or a mapping", key_node.start_mark
            ) from None
        if key in lines:
            loader.repeated.setdefault(id(data), []).append((key, lines[key], key_node.start_mark.line + 1))
        else:
            lines[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:  # a repeated key is reported above; the map will not load
        data[loader.construct_object(key_node, deep=True)] = loader.construct_object(value_node, deep=False)
    loader.starts[id(data)] = node.start_mark.line + 1
    loader.key_lines[id(data)] = lines


for _loader in (_PureMapLoader, _FastMapLoader):
    _loader.add_constructor("tag:yaml.org,2002:map", _mapping_construct)
_MapLoader: type = _FastMapLoader


@dataclass(frozen=True)
class _Place:
    system: str = ""
    collection: str = ""
    field: str = ""
    detail: str = ""
    line: int | None = None

    def but(self, **changes: Any) -> _Place:
        return replace(self, **changes)


@dataclass
class _Reader:
    starts: dict[int, int] = field(default_factory=dict)
    key_lines: dict[int, dict[Any, int]] = field(default_factory=dict)
    repeated: dict[int, list[tuple[Any, int, int]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Every recipient read, with its place: checked across systems once all are read.
    recipients: list[tuple[Recipient, _Place]] = field(default_factory=list)

    def problem(self, place: _Place, message: str) -> None:
        self.problems.append(
            Problem(
                message=message,
                system=place.system,
                collection=place.collection,
                field=place.field,
                detail=place.detail,
                line=place.line,
            )
        )

    def start(self, place: _Place, mapping: Any) -> _Place:
        """The place, on the line where `mapping` starts."""
        return place.but(line=self.starts.get(id(mapping), place.line))

    def at(self, place: _Place, mapping: Any, key: Any) -> _Place:
        """The place, on the line of `key` in `mapping`."""
        return place.but(line=self.key_lines.get(id(mapping), {}).get(key, place.line))

    def keys_check(self, place: _Place, value: dict, allowed: set[str] | None) -> None:
        """Unknown keys (when `allowed` is given) and keys written twice in one mapping."""
        for key, first, again in self.repeated.pop(id(value), []):
            self.problem(place.but(line=again), f"'{key}' is given twice (first on line {first})")
        if allowed is None:
            return
        for key in value:
            if key not in allowed:
                self.problem(
                    self.at(place, value, key), f"unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})"
                )

    def text(self, place: _Place, value: dict, key: str, *, required: bool = False, default: str = "") -> str:
        item = value.get(key, None)
        if item is None or item == "":
            if required:
                self.problem(place, f"'{key}' is required")
            return default
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            self.problem(self.at(place, value, key), f"'{key}' must be text")
            return default
        return str(item).strip()

    def flag(self, place: _Place, value: dict, key: str) -> bool:
        item = value.get(key, False)
        if not isinstance(item, bool):
            self.problem(self.at(place, value, key), f"'{key}' must be true or false, not {item!r}")
            return False
        return item

    def texts(self, place: _Place, value: dict, key: str) -> tuple[str, ...]:
        item = value.get(key, [])
        if item is None:
            return ()
        if isinstance(item, str):
            item = [item]
        if not isinstance(item, list) or not all(isinstance(i, str) and i.strip() for i in item):
            self.problem(self.at(place, value, key), f"'{key}' must be a list of texts")
            return ()
        return tuple(i.strip() for i in item)


def _field(reader: _Reader, place: _Place, fields: dict, name: Any, spec: Any) -> Field | None:
    place = reader.at(place.but(field=str(name)), fields, name)
    if not isinstance(name, str) or not COLUMN_RE.match(name):
        reader.problem(place, "a field name is letters, digits and underscores (at most 63)")
        return None
    if isinstance(spec, str):
        spec = {"category": spec}
    if not isinstance(spec, dict):
        reader.problem(place, "give the field's category, or a mapping with 'category' and its flags")
        return None
    reader.keys_check(place, spec, FIELD_KEYS)
    category = reader.text(place, spec, "category", required=True)
    if category and category != NOT_PERSONAL and category not in CCPA_CATEGORIES:
        reader.problem(
            place,
            f"unknown category '{category}' (one of: {', '.join(CCPA_CATEGORIES)}, or '{NOT_PERSONAL}' "
            "for a field that is not personal information)",
        )
    erasure = reader.text(place, spec, "erasure")
    if erasure and erasure not in ERASURE_STRATEGIES:
        reader.problem(place, f"unknown erasure strategy '{erasure}' (one of: {', '.join(ERASURE_STRATEGIES)})")
    keep_reason = reader.text(place, spec, "keep_reason")
    if erasure == "keep" and not keep_reason:
        reader.problem(place, "'erasure: keep' needs a 'keep_reason' (the legal basis for keeping it)")
    elif keep_reason and erasure != "keep":
        reader.problem(place, "'keep_reason' belongs with 'erasure: keep'")
    erasure_value = reader.text(place, spec, "erasure_value")
    if erasure_value and erasure != "fixed":
        reader.problem(place, "'erasure_value' belongs with 'erasure: fixed'")
    never_disclose = reader.flag(place, spec, "never_disclose")
    others_data = reader.flag(place, spec, "others_data")
    corrects = reader.text(place, spec, "corrects")
    words = correction_words()
    if corrects and corrects not in words:
        reader.problem(
            reader.at(place, spec, "corrects"),
            f"unknown correction field '{corrects}' (one of the request form's: {', '.join(words)})",
        )
        corrects = ""
    elif corrects and category == NOT_PERSONAL:
        reader.problem(
            reader.at(place, spec, "corrects"),
            "a field a person can correct is personal information: give its category",
        )
    if category == NOT_PERSONAL and (never_disclose or others_data):
        what = "a never-disclosed field" if never_disclose else "a field that may hold others' data (others_data)"
        reader.problem(place, f"{what} is personal information: give its category")
    return Field(
        name=name,
        category=category,
        provided=reader.flag(place, spec, "provided"),
        never_disclose=never_disclose,
        others_data=others_data,
        erasure=erasure,
        keep_reason=keep_reason,
        description=reader.text(place, spec, "description"),
        erasure_value=erasure_value,
        corrects=corrects,
    )


def correction_words() -> tuple[str, ...]:
    """The words a field may `corrects`: the request form's correction fields (dsr.services.intake),
    except "something else", which names no field."""
    return tuple(word for word in CORRECTABLE_FIELDS if word != "other")


def _identities(reader: _Reader, place: _Place, value: dict, fields: dict[str, Field]) -> dict[str, str]:
    raw = value.get("identities")
    place = reader.at(place.but(detail="identities"), value, "identities")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        reader.problem(place, "'identities' maps an identity kind to a field, e.g. {email: email}")
        return {}
    reader.keys_check(place, raw, None)
    identities: dict[str, str] = {}
    for identity, column in raw.items():
        here = reader.at(place, raw, identity)
        if identity not in IDENTITY_KINDS:
            reader.problem(here, f"unknown identity kind '{identity}' (one of: {', '.join(IDENTITY_KINDS)})")
        elif not isinstance(column, str) or (fields and column not in fields):
            reader.problem(here, f"identity '{identity}' names '{column}', not one of its fields")
        else:
            named = fields.get(column)
            if named and named.never_disclose:
                # §7060(c): a request should not have to bring an SSN or a card number to be found,
                # and what finds the person is echoed back to them in the package.
                reader.problem(
                    here.but(field=column),
                    f"is the '{identity}' identity and never_disclose: a person is found by what they "
                    "give in the request, which is never a never-disclosed number",
                )
            elif named and not named.personal:
                reader.problem(
                    here.but(field=column),
                    f"is the '{identity}' identity, so it is personal information: give its category",
                )
            identities[identity] = column
    return identities


def _collection(reader: _Reader, place: _Place, kind: str, index: int, value: Any) -> Collection | None:
    place = place.but(detail=f"collection #{index + 1}")
    if not isinstance(value, dict):
        reader.problem(place, "a collection is a mapping with a name and fields")
        return None
    place = reader.start(place, value)
    name = value.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        reader.problem(
            reader.at(place, value, "name"), "'name' is required: lower-case letters, digits and underscores"
        )
        return None
    place = place.but(collection=name, detail="")
    reader.keys_check(place, value, COLLECTION_KEYS)
    if kind == "django":
        location = reader.text(place, value, "model", required=True)
        if location and not MODEL_RE.match(location):
            reader.problem(reader.at(place, value, "model"), f"'model' is 'app_label.ModelName', not '{location}'")
        if "table" in value:
            reader.problem(
                reader.at(place, value, "table"), "'table' is for sql systems; a django system names its 'model'"
            )
    else:
        location = reader.text(place, value, "table", default=name)
        if kind == "sql" and not COLUMN_RE.match(location):
            reader.problem(
                reader.at(place, value, "table"), f"'table' is letters, digits and underscores, not '{location}'"
            )
        if "model" in value:
            reader.problem(reader.at(place, value, "model"), "'model' is for django systems only")
    raw_fields = value.get("fields")
    fields: dict[str, Field] = {}
    if not isinstance(raw_fields, dict) or not raw_fields:
        reader.problem(reader.at(place, value, "fields"), "'fields' is required: each field name with its category")
    else:
        fields_place = reader.start(place, raw_fields)
        for key, first, again in reader.repeated.pop(id(raw_fields), []):
            reader.problem(
                fields_place.but(field=str(key), line=again), f"named twice in this collection (first on line {first})"
            )
        for field_name, spec in raw_fields.items():
            parsed = _field(reader, place, raw_fields, field_name, spec)
            if parsed:
                fields[parsed.name] = parsed
    primary_key = reader.text(place, value, "primary_key", default="id")
    if fields and primary_key not in fields:
        reader.problem(reader.at(place, value, "primary_key"), f"primary_key '{primary_key}' is not one of its fields")
    _corrects_check(reader, place, raw_fields if isinstance(raw_fields, dict) else {}, fields, primary_key)
    identities = _identities(reader, place, value, fields)
    dated_by = reader.text(place, value, "dated_by")
    if dated_by and fields and dated_by not in fields:
        reader.problem(reader.at(place, value, "dated_by"), f"dated_by '{dated_by}' is not one of its fields")
    return Collection(
        name=name,
        location=location,
        primary_key=primary_key,
        identities=identities,
        dated_by=dated_by,
        fields=tuple(fields.values()),
        description=reader.text(place, value, "description"),
        flags=_flags(reader, place, value, fields, primary_key),
    )


def _flags(reader: _Reader, place: _Place, value: dict, fields: dict[str, Field], primary_key: str) -> dict[str, str]:
    """`flags: {restrict: <field>, opt_out_sale: <field>, limit_sensitive: <field>}`: each optional,
    each one of the collection's own fields (set to true on the person's rows when told)."""
    raw = value.get("flags")
    place = reader.at(place.but(detail="flags"), value, "flags")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        reader.problem(place, "'flags' maps an action to a field, e.g. {restrict: restricted}")
        return {}
    reader.keys_check(place, raw, None)
    flags: dict[str, str] = {}
    for action, column in raw.items():
        here = reader.at(place, raw, action)
        if action not in FLAG_ACTIONS:
            reader.problem(here, f"unknown flag '{action}' (one of: {', '.join(FLAG_ACTIONS)})")
        elif not isinstance(column, str) or not column.strip():
            reader.problem(here, f"flag '{action}' names a field of the collection, not {column!r}")
        elif fields and column not in fields:
            reader.problem(here, f"flag '{action}' names '{column}', not one of its fields")
        elif column == primary_key:
            reader.problem(here.but(field=column), f"is the primary key: flag '{action}' needs a field of its own")
        else:
            flags[action] = column
    return flags


def _corrects_check(
    reader: _Reader, place: _Place, raw_fields: dict, fields: dict[str, Field], primary_key: str
) -> None:
    """One field per correction word in a collection (two would get one correction twice, or
    disagree when read back), and never the primary key (a row is corrected by it)."""
    claimed: dict[str, str] = {}
    for name, parsed in fields.items():
        if not parsed.corrects:
            continue
        spec = raw_fields.get(name)
        here = reader.at(place.but(field=name), spec, "corrects") if isinstance(spec, dict) else place.but(field=name)
        if name == primary_key:
            reader.problem(
                here, f"is the primary key: a correction of '{parsed.corrects}' cannot rewrite the key it is found by"
            )
        if parsed.corrects in claimed:
            reader.problem(
                here,
                f"'corrects: {parsed.corrects}' is claimed by field '{claimed[parsed.corrects]}' of this collection "
                "too: one field per correction",
            )
        else:
            claimed[parsed.corrects] = name


def _secret_in_url(url: str) -> bool:
    parts = urlsplit(url)
    query_keys = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return bool(parts.password or parts.username) or any(word in key for key in query_keys for word in SECRET_WORDS)


def _connection(reader: _Reader, place: _Place, kind: str, system: dict) -> dict[str, Any]:
    value = system.get("connection")
    place = reader.at(place.but(detail="connection"), system, "connection")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        reader.problem(place, "'connection' is a mapping of settings")
        return {}
    reader.keys_check(place, value, None)
    allowed = CONNECTION_KEYS.get(kind)
    for key, item in value.items():
        here = reader.at(place, value, key)
        if not isinstance(key, str):
            reader.problem(here, f"a setting's name is text, not {key!r}")
        elif any(word in key.lower() for word in SECRET_WORDS) and not key.endswith("_env"):
            reader.problem(
                here,
                f"'{key}' looks like a secret: name the environment variable that holds it ('{key}_env'), "
                "never the value",
            )
        elif allowed is None:
            continue  # the kind itself is reported; its settings cannot be judged
        elif key not in allowed:
            reader.problem(here, f"unknown setting '{key}' for a {kind} system (one of: {', '.join(allowed)})")
        elif key.endswith("_env") and not (isinstance(item, str) and ENV_NAME_RE.match(item)):
            reader.problem(here, f"'{key}' is the name of an environment variable (A-Z, 0-9, _), not {item!r}")
        elif key == "url" and (not isinstance(item, str) or _secret_in_url(item)):
            reader.problem(
                here,
                "'url' must not carry a user, password or token: put the secret in 'secret_env', or the whole "
                "address in 'url_env'",
            )
    for key, required in (allowed or {}).items():
        if required and key not in value:
            reader.problem(place, f"'{key}' is required for a {kind} system")
    if kind == "http" and not (value.get("url") or value.get("url_env")):
        reader.problem(place, "an http system needs 'url' or 'url_env'")
    for key in ("statement_timeout_ms", "timeout_seconds", "retries", "remind_days"):
        if key in value and (
            isinstance(value[key], bool) or not isinstance(value[key], (int, float)) or value[key] < 0
        ):
            reader.problem(reader.at(place, value, key), f"'{key}' must be a positive number")
    return dict(value)


def _references(
    reader: _Reader, place: _Place, system: dict, collections: dict[str, Collection]
) -> tuple[tuple[Reference, ...], bool]:
    """The system's references, and whether they all hold (only then is the graph judged)."""
    value = system.get("references")
    place = reader.at(place.but(detail="references"), system, "references")
    found: list[Reference] = []
    valid = True
    if value is None:
        return (), True
    if not isinstance(value, list):
        reader.problem(place, "'references' is a list like 'customer.id -> orders.customer_id'")
        return (), False
    for item in value:
        match = REFERENCE_RE.match(item) if isinstance(item, str) else None
        if not match:
            reader.problem(place, f"{item!r} is not 'collection.field -> collection.field'")
            valid = False
            continue
        ref = Reference(*match.groups())
        here = place.but(detail=f"reference '{ref}'")
        if ref in found:
            reader.problem(here, "listed twice")
            continue
        for collection, column in ((ref.source, ref.source_field), (ref.target, ref.target_field)):
            if collection not in collections:
                reader.problem(here, f"no collection '{collection}' in this system")
                valid = False
            elif collections[collection].field(column) is None:
                reader.problem(here.but(collection=collection), f"collection '{collection}' has no field '{column}'")
                valid = False
        found.append(ref)
    return tuple(found), valid


def _reachability(
    reader: _Reader, place: _Place, raw: dict[str, Any], collections: dict[str, Collection], references
) -> None:
    """Every collection must be reachable from an identity, and the references must not loop."""
    reached = {name for name, c in collections.items() if c.identities}
    queue = deque(reached)
    while queue:
        current = queue.popleft()
        for ref in references:
            if ref.source == current and ref.target not in reached and ref.target in collections:
                reached.add(ref.target)
                queue.append(ref.target)
    for name in collections:
        if name not in reached:
            reader.problem(
                reader.start(place.but(collection=name), raw.get(name)),
                "cannot be reached from any identity: give it 'identities' or a reference from a collection "
                "that has them, or a person's data there would never be found",
            )
    try:
        _order([*collections], references)
    except ValueError as loop:
        reader.problem(place.but(detail="references"), str(loop))


def _order(names: list[str], references) -> list[str]:
    incoming = {n: {r.source for r in references if r.target == n and r.source != n} for n in names}
    selfish = sorted({r.source for r in references if r.source == r.target})
    if selfish:
        raise ValueError(
            f"a reference from a collection to itself cannot be followed in one query ({', '.join(selfish)})"
        )
    ordered: list[str] = []
    while incoming:
        ready = [n for n, sources in incoming.items() if not sources - set(ordered)]
        if not ready:
            raise ValueError(f"the references loop through: {', '.join(sorted(incoming))}")
        for n in ready:
            ordered.append(n)
            del incoming[n]
    return ordered


def _topological(system: System) -> list[str]:
    return _order([c.name for c in system.collections], system.references)


def _recipients(reader: _Reader, place: _Place, system: dict) -> tuple[Recipient, ...]:
    value = system.get("recipients")
    place = reader.at(place.but(detail="recipients"), system, "recipients")
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problem(place, "'recipients' is a list of {name, category, sold, shared}")
        return ()
    found = []
    for index, item in enumerate(value):
        here = reader.start(place.but(detail=f"recipient #{index + 1}"), item)
        if not isinstance(item, dict):
            reader.problem(here, "a recipient is a mapping with name and category")
            continue
        reader.keys_check(here, item, RECIPIENT_KEYS)
        contact = reader.text(here, item, "contact")
        if contact:
            try:
                validate_email(contact)
            except ValidationError:
                reader.problem(reader.at(here, item, "contact"), f"contact '{contact}' is not an email address")
        stands_for = reader.text(here, item, "system")
        if contact and stands_for:
            reader.problem(
                reader.at(here, item, "system"),
                "give 'contact' (told by email) or 'system' (the system that stands for it), not both",
            )
        recipient = Recipient(
            name=reader.text(here, item, "name", required=True),
            category=reader.text(here, item, "category", required=True),
            purpose=reader.text(here, item, "purpose"),
            sold=reader.flag(here, item, "sold"),
            shared=reader.flag(here, item, "shared"),
            contact=contact,
            system=stands_for,
        )
        found.append(recipient)
        if recipient.name:
            reader.recipients.append((recipient, reader.at(here, item, "system") if stands_for else here))
    return tuple(found)


def _recipients_check(reader: _Reader, systems: dict[str, System]) -> None:
    """Across the map: a recipient's `system` is an http or manual system of the map (not the one
    listing it), and a recipient listed by several systems is told the same way by each (it is
    told once per request)."""
    first: dict[str, tuple[Recipient, _Place]] = {}
    for recipient, place in reader.recipients:
        if recipient.system:
            target = systems.get(recipient.system)
            if target is None:
                reader.problem(place, f"system '{recipient.system}' is not a system of this map")
            elif target.kind not in RECIPIENT_SYSTEM_KINDS:
                reader.problem(
                    place,
                    f"system '{recipient.system}' is a {target.kind} system; a recipient stands for an "
                    f"{' or '.join(RECIPIENT_SYSTEM_KINDS)} system",
                )
            elif recipient.system == place.system:
                reader.problem(place, "names the system that lists it; a recipient is another party")
        seen = first.get(recipient.key)
        if seen is None:
            first[recipient.key] = (recipient, place)
        elif (seen[0].contact, seen[0].system) != (recipient.contact, recipient.system):
            reader.problem(
                place,
                f"recipient '{recipient.name}' is told differently on line {seen[1].line} (system "
                f"'{seen[1].system}'): give it the same 'contact' or 'system' everywhere",
            )


def _system(reader: _Reader, index: int, value: Any) -> System | None:
    place = _Place(detail=f"system #{index + 1}")
    if not isinstance(value, dict):
        reader.problem(place, "a system is a mapping with name, owner, kind and collections")
        return None
    place = reader.start(place, value)
    name = value.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        reader.problem(
            reader.at(place, value, "name"), "'name' is required: lower-case letters, digits and underscores"
        )
        return None
    place = place.but(system=name, detail="")
    reader.keys_check(place, value, SYSTEM_KEYS)
    owner = reader.text(place, value, "owner", required=True)
    if owner:
        try:
            validate_email(owner)
        except ValidationError:
            reader.problem(reader.at(place, value, "owner"), f"owner '{owner}' is not an email address")
    kind = reader.text(place, value, "kind", required=True)
    if kind and kind not in CONNECTOR_KINDS:
        reader.problem(reader.at(place, value, "kind"), f"unknown kind '{kind}' (one of: {', '.join(CONNECTOR_KINDS)})")
    connection = _connection(reader, place, kind, value)
    raw_collections = value.get("collections")
    collections: dict[str, Collection] = {}
    raw_by_name: dict[str, Any] = {}
    if not isinstance(raw_collections, list) or not raw_collections:
        reader.problem(
            reader.at(place, value, "collections"),
            "'collections' is required: where in the system a person's data is kept",
        )
    else:
        for position, item in enumerate(raw_collections):
            parsed = _collection(reader, place, kind, position, item)
            if parsed and parsed.name in collections:
                reader.problem(
                    reader.start(place.but(collection=parsed.name), item),
                    f"named twice in this system (first on line {reader.starts.get(id(raw_by_name[parsed.name]))})",
                )
            elif parsed:
                collections[parsed.name] = parsed
                raw_by_name[parsed.name] = item
    references, references_hold = _references(reader, place, value, collections)
    if collections and references_hold:
        _reachability(reader, place, raw_by_name, collections, references)
    field_categories = {c for col in collections.values() for c in col.categories}
    declared = reader.texts(place, value, "categories")
    categories_place = reader.at(place.but(detail="categories"), value, "categories")
    for slug in declared:
        if slug not in CCPA_CATEGORIES:
            reader.problem(categories_place, f"unknown category '{slug}' (one of: {', '.join(CCPA_CATEGORIES)})")
    missing = field_categories - set(declared)
    if declared and missing:
        reader.problem(
            categories_place,
            f"the fields hold {', '.join(sorted(missing))}, which the system's categories do not list",
        )
    return System(
        name=name,
        owner=owner,
        kind=kind,
        connection=connection,
        categories=tuple(declared) if declared else tuple(sorted(field_categories)),
        sources=reader.texts(place, value, "sources"),
        purposes=reader.texts(place, value, "purposes"),
        recipients=_recipients(reader, place, value),
        retention=reader.text(place, value, "retention"),
        collections=tuple(collections.values()),
        references=references,
        description=reader.text(place, value, "description"),
    )


def _yaml_read(content: bytes, path: str) -> tuple[Any, _Reader]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataMapError(path, [Problem(f"the file is not UTF-8 text (byte {error.start + 1})")]) from None
    loader = _MapLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark else None
        where = f"column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise DataMapError(path, [Problem(f"not valid YAML ({reason})", detail=where, line=line)]) from None
    finally:
        loader.dispose()
    return document, _Reader(starts=loader.starts, key_lines=loader.key_lines, repeated=loader.repeated)


def datamap_parse(content: bytes, *, path: str = "<data map>") -> DataMap:
    """Parse and validate a map's bytes; DataMapError lists every problem found."""
    document, reader = _yaml_read(content, path)
    if document is None:
        raise DataMapError(path, [Problem("the file is empty: the map is a mapping with a 'systems' list")])
    if not isinstance(document, dict):
        raise DataMapError(
            path, [Problem(f"the map is a mapping with a 'systems' list, not a {_yaml_kind(document)}", line=1)]
        )
    top = reader.start(_Place(), document)
    reader.keys_check(top, document, {"systems", "version"})
    if "version" in document and document["version"] != 1:
        reader.problem(reader.at(top, document, "version"), "'version' is the format's version: 1")
    raw_systems = document.get("systems")
    if not isinstance(raw_systems, list) or not raw_systems:
        reader.problem(reader.at(top, document, "systems"), "'systems' is required: a list of at least one system")
        raw_systems = []
    systems: dict[str, System] = {}
    first_line: dict[str, int | None] = {}
    for index, item in enumerate(raw_systems):
        parsed = _system(reader, index, item)
        if parsed and parsed.name in systems:
            reader.problem(
                reader.start(_Place(system=parsed.name), item), f"named twice (first on line {first_line[parsed.name]})"
            )
        elif parsed:
            systems[parsed.name] = parsed
            first_line[parsed.name] = reader.starts.get(id(item))
    _recipients_check(reader, systems)
    for repeats in reader.repeated.values():  # keys repeated somewhere no check above looked
        for key, first, again in repeats:
            reader.problem(_Place(line=again), f"'{key}' is given twice in one mapping (first on line {first})")
    if reader.problems:
        raise DataMapError(path, sorted(reader.problems, key=lambda p: p.line or 0))
    return DataMap(path=path, version=hashlib.sha256(content).hexdigest(), systems=tuple(systems.values()))


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def datamap_path() -> Path:
    return Path(settings.DSR_DATAMAP)


# The last map parsed per file, with the file's stamp when it was read. A new stamp (mtime, size,
# inode, ctime) is a new version; one lock per file so concurrent callers parse it once.
_cache: dict[str, tuple[tuple[int, ...], DataMap]] = {}
_cache_lock = threading.Lock()
_file_locks: dict[str, threading.Lock] = {}


def _stamp(target: Path) -> tuple[int, ...]:
    stat = target.stat()
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_ctime_ns)


def datamap_load(path: str | os.PathLike | None = None) -> DataMap:
    """The map at `path` (default: DSR_DATAMAP), parsed once per version of the file."""
    target = Path(path) if path is not None else datamap_path()
    key = os.path.abspath(target)
    with _cache_lock:
        lock = _file_locks.setdefault(key, threading.Lock())
    with lock:
        for _attempt in range(3):
            try:
                before = _stamp(target)
                cached = _cache.get(key)
                if cached and cached[0] == before:
                    return cached[1]
                content = target.read_bytes()
                after = _stamp(target)
            except OSError as error:
                raise DataMapError(str(target), [Problem(f"cannot be read ({error.strerror or error})")]) from None
            if before == after:  # not rewritten while it was read
                break
        else:
            raise DataMapError(str(target), [Problem("the file kept changing while it was read; try again")])
        loaded = datamap_parse(content, path=str(target))
        _cache[key] = (before, loaded)
        return loaded
