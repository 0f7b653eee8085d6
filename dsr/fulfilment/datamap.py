"""The data map: where the business keeps personal data, read from one reviewable YAML file
(`DSR_DATAMAP`). Loading validates it whole — every problem named by file, system, collection and
field — and refuses a map with any, including a collection no identity can reach (a person could
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from dsr.fulfilment.categories import CCPA_CATEGORIES, CONNECTOR_KINDS, ERASURE_STRATEGIES, IDENTITY_KINDS

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
    "sql": {"dsn_env": True, "statement_timeout_ms": False, "schema": False},
    "django": {"database": False},
    "http": {
        "url": False,
        "url_env": False,
        "secret_env": True,
        "timeout_seconds": False,
        "retries": False,
        "callback": False,
    },
    "manual": {"instructions": False, "remind_days": False},
}
SYSTEM_KEYS = {
    "name", "description", "owner", "kind", "connection", "categories", "sources", "purposes",
    "recipients", "retention", "references", "collections",
}  # fmt: skip
COLLECTION_KEYS = {"name", "description", "table", "model", "primary_key", "identities", "dated_by", "fields"}
FIELD_KEYS = {"category", "description", "provided", "never_disclose", "others_data", "erasure", "keep_reason"}
RECIPIENT_KEYS = {"name", "category", "purpose", "sold", "shared"}


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

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

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


@dataclass
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class DataMapError(Exception):
    """The map cannot be loaded; `problems` names each place, prefixed by the file."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems
        lines = [f"{path}: {p}" for p in problems]
        super().__init__("The data map does not validate:\n" + "\n".join(lines))


# --- Validation -----------------------------------------------------------------------------------


@dataclass
class _Reader:
    problems: list[Problem] = field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def unknown_keys(self, where: str, value: dict, allowed: set[str]) -> None:
        for key in value:
            if key not in allowed:
                self.problem(where, f"unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})")

    def text(self, where: str, value: Any, key: str, *, required: bool = False, default: str = "") -> str:
        item = value.get(key, None)
        if item is None or item == "":
            if required:
                self.problem(where, f"'{key}' is required")
            return default
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            self.problem(where, f"'{key}' must be text")
            return default
        return str(item).strip()

    def flag(self, where: str, value: dict, key: str) -> bool:
        item = value.get(key, False)
        if not isinstance(item, bool):
            self.problem(where, f"'{key}' must be true or false, not {item!r}")
            return False
        return item

    def texts(self, where: str, value: dict, key: str) -> tuple[str, ...]:
        item = value.get(key, [])
        if item is None:
            return ()
        if isinstance(item, str):
            item = [item]
        if not isinstance(item, list) or not all(isinstance(i, str) and i.strip() for i in item):
            self.problem(where, f"'{key}' must be a list of texts")
            return ()
        return tuple(i.strip() for i in item)


def _where(*parts: str) -> str:
    return " › ".join(p for p in parts if p)


def _field(reader: _Reader, where: str, name: Any, spec: Any) -> Field | None:
    where = _where(where, f"field '{name}'")
    if not isinstance(name, str) or not COLUMN_RE.match(name):
        reader.problem(where, "a field name is letters, digits and underscores")
        return None
    if isinstance(spec, str):
        spec = {"category": spec}
    if not isinstance(spec, dict):
        reader.problem(where, "give the field's category, or a mapping with 'category' and its flags")
        return None
    reader.unknown_keys(where, spec, FIELD_KEYS)
    category = reader.text(where, spec, "category", required=True)
    if category and category != NOT_PERSONAL and category not in CCPA_CATEGORIES:
        reader.problem(
            where,
            f"unknown category '{category}' (one of: {', '.join(CCPA_CATEGORIES)}, or '{NOT_PERSONAL}' "
            "for a field that is not personal information)",
        )
    erasure = reader.text(where, spec, "erasure")
    if erasure and erasure not in ERASURE_STRATEGIES:
        reader.problem(where, f"unknown erasure strategy '{erasure}' (one of: {', '.join(ERASURE_STRATEGIES)})")
    keep_reason = reader.text(where, spec, "keep_reason")
    if erasure == "keep" and not keep_reason:
        reader.problem(where, "'erasure: keep' needs a 'keep_reason' (the legal basis for keeping it)")
    never_disclose = reader.flag(where, spec, "never_disclose")
    if never_disclose and category == NOT_PERSONAL:
        reader.problem(where, "a never-disclosed field is personal information: give its category")
    return Field(
        name=name,
        category=category,
        provided=reader.flag(where, spec, "provided"),
        never_disclose=never_disclose,
        others_data=reader.flag(where, spec, "others_data"),
        erasure=erasure,
        keep_reason=keep_reason,
        description=reader.text(where, spec, "description"),
    )


def _collection(reader: _Reader, where: str, kind: str, index: int, value: Any) -> Collection | None:
    if not isinstance(value, dict):
        reader.problem(_where(where, f"collection #{index + 1}"), "a collection is a mapping with a name and fields")
        return None
    name = value.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        reader.problem(
            _where(where, f"collection #{index + 1}"), "'name' is required: lower-case letters, digits and underscores"
        )
        return None
    where = _where(where, f"collection '{name}'")
    reader.unknown_keys(where, value, COLLECTION_KEYS)
    if kind == "django":
        location = reader.text(where, value, "model", required=True)
        if location and not MODEL_RE.match(location):
            reader.problem(where, f"'model' is 'app_label.ModelName', not '{location}'")
    else:
        location = reader.text(where, value, "table", default=name)
        if kind == "sql" and not COLUMN_RE.match(location):
            reader.problem(where, f"'table' is letters, digits and underscores, not '{location}'")
        if kind != "django" and "model" in value:
            reader.problem(where, "'model' is for django systems only")
    raw_fields = value.get("fields")
    fields: list[Field] = []
    if not isinstance(raw_fields, dict) or not raw_fields:
        reader.problem(where, "'fields' is required: each field name with its category")
    else:
        for field_name, spec in raw_fields.items():
            parsed = _field(reader, where, field_name, spec)
            if parsed:
                fields.append(parsed)
    names = {f.name for f in fields}
    primary_key = reader.text(where, value, "primary_key", default="id")
    if fields and primary_key not in names:
        reader.problem(where, f"primary_key '{primary_key}' is not one of its fields")
    identities_raw = value.get("identities") or {}
    identities: dict[str, str] = {}
    if not isinstance(identities_raw, dict):
        reader.problem(where, "'identities' maps an identity kind to a field, e.g. {email: email}")
    else:
        for identity, column in identities_raw.items():
            if identity not in IDENTITY_KINDS:
                reader.problem(
                    _where(where, "identities"),
                    f"unknown identity kind '{identity}' (one of: {', '.join(IDENTITY_KINDS)})",
                )
            elif not isinstance(column, str) or (fields and column not in names):
                reader.problem(
                    _where(where, "identities"), f"identity '{identity}' names '{column}', not one of its fields"
                )
            else:
                identities[identity] = column
    dated_by = reader.text(where, value, "dated_by")
    if dated_by and fields and dated_by not in names:
        reader.problem(where, f"dated_by '{dated_by}' is not one of its fields")
    return Collection(
        name=name,
        location=location,
        primary_key=primary_key,
        identities=identities,
        dated_by=dated_by,
        fields=tuple(fields),
        description=reader.text(where, value, "description"),
    )


def _connection(reader: _Reader, where: str, kind: str, value: Any) -> dict[str, Any]:
    where = _where(where, "connection")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        reader.problem(where, "'connection' is a mapping of settings")
        return {}
    allowed = CONNECTION_KEYS.get(kind, {})
    for key, item in value.items():
        if any(word in key.lower() for word in SECRET_WORDS) and not key.endswith("_env"):
            reader.problem(
                where,
                f"'{key}' looks like a secret: name the environment variable that holds it ('{key}_env'), "
                "never the value",
            )
        elif key not in allowed:
            reader.problem(where, f"unknown setting '{key}' for a {kind} system (one of: {', '.join(allowed)})")
        elif key.endswith("_env") and not (isinstance(item, str) and ENV_NAME_RE.match(item)):
            reader.problem(where, f"'{key}' is the name of an environment variable (A-Z, 0-9, _), not {item!r}")
    for key, required in allowed.items():
        if required and key not in value:
            reader.problem(where, f"'{key}' is required for a {kind} system")
    if kind == "http" and not (value.get("url") or value.get("url_env")):
        reader.problem(where, "an http system needs 'url' or 'url_env'")
    for key in ("statement_timeout_ms", "timeout_seconds", "retries", "remind_days"):
        if key in value and (
            isinstance(value[key], bool) or not isinstance(value[key], (int, float)) or value[key] < 0
        ):
            reader.problem(where, f"'{key}' must be a positive number")
    return dict(value)


def _references(reader: _Reader, where: str, value: Any, collections: dict[str, Collection]) -> tuple[Reference, ...]:
    found: list[Reference] = []
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problem(_where(where, "references"), "'references' is a list like 'customer.id -> orders.customer_id'")
        return ()
    for item in value:
        match = REFERENCE_RE.match(item) if isinstance(item, str) else None
        if not match:
            reader.problem(_where(where, "references"), f"{item!r} is not 'collection.field -> collection.field'")
            continue
        ref = Reference(*match.groups())
        for collection, column in ((ref.source, ref.source_field), (ref.target, ref.target_field)):
            if collection not in collections:
                reader.problem(_where(where, f"reference '{ref}'"), f"no collection '{collection}' in this system")
            elif collections[collection].field(column) is None:
                reader.problem(
                    _where(where, f"reference '{ref}'"), f"collection '{collection}' has no field '{column}'"
                )
        found.append(ref)
    return tuple(found)


def _reachability(reader: _Reader, where: str, collections: dict[str, Collection], references) -> None:
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
                _where(where, f"collection '{name}'"),
                "cannot be reached from any identity: give it 'identities' or a reference from a collection "
                "that has them, or a person's data there would never be found",
            )
    try:
        _order([*collections], references)
    except ValueError as loop:
        reader.problem(_where(where, "references"), str(loop))


def _order(names: list[str], references) -> list[str]:
    incoming = {n: {r.source for r in references if r.target == n and r.source != n} for n in names}
    if any(r.source == r.target for r in references):
        raise ValueError("a reference from a collection to itself cannot be followed in one query")
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


def _recipients(reader: _Reader, where: str, value: Any) -> tuple[Recipient, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problem(_where(where, "recipients"), "'recipients' is a list of {name, category, sold, shared}")
        return ()
    found = []
    for index, item in enumerate(value):
        here = _where(where, f"recipient #{index + 1}")
        if not isinstance(item, dict):
            reader.problem(here, "a recipient is a mapping with name and category")
            continue
        reader.unknown_keys(here, item, RECIPIENT_KEYS)
        found.append(
            Recipient(
                name=reader.text(here, item, "name", required=True),
                category=reader.text(here, item, "category", required=True),
                purpose=reader.text(here, item, "purpose"),
                sold=reader.flag(here, item, "sold"),
                shared=reader.flag(here, item, "shared"),
            )
        )
    return tuple(found)


def _system(reader: _Reader, index: int, value: Any) -> System | None:
    if not isinstance(value, dict):
        reader.problem(f"system #{index + 1}", "a system is a mapping with name, owner, kind and collections")
        return None
    name = value.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        reader.problem(f"system #{index + 1}", "'name' is required: lower-case letters, digits and underscores")
        return None
    where = f"system '{name}'"
    reader.unknown_keys(where, value, SYSTEM_KEYS)
    owner = reader.text(where, value, "owner", required=True)
    if owner:
        try:
            validate_email(owner)
        except ValidationError:
            reader.problem(where, f"owner '{owner}' is not an email address")
    kind = reader.text(where, value, "kind", required=True)
    if kind and kind not in CONNECTOR_KINDS:
        reader.problem(where, f"unknown kind '{kind}' (one of: {', '.join(CONNECTOR_KINDS)})")
    connection = _connection(reader, where, kind, value.get("connection"))
    raw_collections = value.get("collections")
    collections: dict[str, Collection] = {}
    if not isinstance(raw_collections, list) or not raw_collections:
        reader.problem(where, "'collections' is required: where in the system a person's data is kept")
    else:
        for position, item in enumerate(raw_collections):
            parsed = _collection(reader, where, kind, position, item)
            if parsed and parsed.name in collections:
                reader.problem(_where(where, f"collection '{parsed.name}'"), "named twice")
            elif parsed:
                collections[parsed.name] = parsed
    references = _references(reader, where, value.get("references"), collections)
    if collections and not any(p.where.startswith(_where(where, "reference")) for p in reader.problems):
        _reachability(reader, where, collections, references)
    field_categories = {c for col in collections.values() for c in col.categories}
    declared = reader.texts(where, value, "categories")
    for slug in declared:
        if slug not in CCPA_CATEGORIES:
            reader.problem(
                _where(where, "categories"), f"unknown category '{slug}' (one of: {', '.join(CCPA_CATEGORIES)})"
            )
    missing = field_categories - set(declared)
    if declared and missing:
        reader.problem(
            _where(where, "categories"),
            f"the fields hold {', '.join(sorted(missing))}, which the system's categories do not list",
        )
    return System(
        name=name,
        owner=owner,
        kind=kind,
        connection=connection,
        categories=tuple(declared) if declared else tuple(sorted(field_categories)),
        sources=reader.texts(where, value, "sources"),
        purposes=reader.texts(where, value, "purposes"),
        recipients=_recipients(reader, where, value.get("recipients")),
        retention=reader.text(where, value, "retention"),
        collections=tuple(collections.values()),
        references=references,
        description=reader.text(where, value, "description"),
    )


def datamap_parse(content: bytes, *, path: str = "<data map>") -> DataMap:
    """Parse and validate a map's bytes; DataMapError lists every problem found."""
    try:
        document = yaml.safe_load(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataMapError(path, [Problem("", "the file is not UTF-8 text")]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DataMapError(path, [Problem(where, f"not valid YAML ({getattr(error, 'problem', error)})")]) from None
    reader = _Reader()
    if not isinstance(document, dict) or not isinstance(document.get("systems"), list):
        raise DataMapError(path, [Problem("", "the map is a mapping with a 'systems' list")])
    reader.unknown_keys("", document, {"systems", "version"})
    systems: list[System] = []
    for index, item in enumerate(document["systems"]):
        parsed = _system(reader, index, item)
        if parsed and any(s.name == parsed.name for s in systems):
            reader.problem(f"system '{parsed.name}'", "named twice")
        elif parsed:
            systems.append(parsed)
    if reader.problems:
        raise DataMapError(path, reader.problems)
    return DataMap(path=path, version=hashlib.sha256(content).hexdigest(), systems=tuple(systems))


def datamap_path() -> Path:
    return Path(settings.DSR_DATAMAP)


_cache: dict[tuple[str, int, int], DataMap] = {}
_cache_lock = threading.Lock()


def datamap_load(path: str | os.PathLike | None = None) -> DataMap:
    """The map at `path` (default: DSR_DATAMAP), parsed once per version of the file."""
    target = Path(path) if path is not None else datamap_path()
    try:
        stat = target.stat()
        key = (str(target), stat.st_mtime_ns, stat.st_size)
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        content = target.read_bytes()
    except OSError as error:
        raise DataMapError(str(target), [Problem("", f"cannot be read ({error.strerror or error})")]) from None
    loaded = datamap_parse(content, path=str(target))
    with _cache_lock:
        _cache.clear()
        _cache[key] = loaded
    return loaded
