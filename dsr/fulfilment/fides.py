"""Importing a Fides dataset file (`dsr_datamap import-fides`), so a team moving from Fides keeps its
map. A Fides file holds a `dataset:` list; each dataset (one database, one system here) has
`collections`, each with `fields` carrying `data_categories` (the Fides taxonomy, e.g.
`user.contact.email`) and `fides_meta` (`identity`, `primary_key`, `references` with a `direction`,
`data_type`, nested `fields`; older files call it `fidesops_meta`).

The conversion is pure: bytes in, this product's map (a document the loader validates) and a list
of notes out — one note, with its place, for everything that could not be carried over exactly
(a Fides category with no CCPA equivalent, a reference into another dataset, an identity on a
nested field…). Nothing is dropped silently: what is left out or guessed is in the notes, which
the command prints and also writes at the top of the generated file for its reviewer."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import yaml

from dsr.fulfilment.datamap import COLUMN_RE, NOT_PERSONAL

# Fides data category (a dotted prefix) -> (CCPA category, never disclosed, provided or observed).
# The longest matching prefix wins. "Never disclosed" follows §7024(d): government ID numbers,
# financial account and card numbers, health-insurance and medical ID numbers, passwords and other
# credentials, biometric data. "Provided" follows Art 20 as the WP29 portability guidelines read it:
# what the person gave and what was observed of their use is portable; what was inferred or
# assigned (a profile, a system's id) is not.
CATEGORY_MAP: dict[str, tuple[str, bool, bool]] = {
    "system": (NOT_PERSONAL, False, False),
    "user.contact": ("identifiers", False, True),
    "user.contact.organization": ("professional_information", False, True),
    "user.name": ("identifiers", False, True),
    "user.account": ("identifiers", False, True),
    "user.account.settings": ("customer_records", False, True),
    "user.unique_id": ("identifiers", False, False),
    "user.device": ("internet_activity", False, True),
    "user.device.cookie_id": ("identifiers", False, True),
    "user.device.device_id": ("identifiers", False, True),
    "user.device.ip_address": ("identifiers", False, True),
    "user.behavior": ("internet_activity", False, True),
    "user.behavior.purchase_history": ("commercial_information", False, True),
    "user.browsing_history": ("internet_activity", False, True),
    "user.search_history": ("internet_activity", False, True),
    "user.media_consumption": ("internet_activity", False, True),
    "user.observed": ("internet_activity", False, True),
    "user.telemetry": ("internet_activity", False, True),
    "user.social": ("internet_activity", False, True),
    "user.content": ("internet_activity", False, True),
    "user.content.self_image": ("sensory_data", False, True),
    "user.location": ("geolocation_data", False, True),
    "user.sensor": ("sensory_data", False, True),
    "user.user_sensor": ("sensory_data", False, True),
    "user.job_title": ("professional_information", False, True),
    "user.workplace": ("professional_information", False, True),
    "user.organization": ("professional_information", False, True),
    "user.demographic": ("protected_classifications", False, True),
    "user.demographic.profile": ("inferences", False, False),
    "user.demographic.race_ethnicity": ("sensitive_personal_information", False, True),
    "user.demographic.religious_belief": ("sensitive_personal_information", False, True),
    "user.demographic.sexual_orientation": ("sensitive_personal_information", False, True),
    "user.gender": ("protected_classifications", False, True),
    "user.date_of_birth": ("protected_classifications", False, True),
    "user.non_specific_age": ("protected_classifications", False, True),
    "user.political_opinion": ("protected_classifications", False, True),
    "user.race": ("sensitive_personal_information", False, True),
    "user.religious_belief": ("sensitive_personal_information", False, True),
    "user.sexual_orientation": ("sensitive_personal_information", False, True),
    "user.profiling": ("inferences", False, False),
    "user.financial": ("customer_records", False, True),
    "user.financial.account_number": ("customer_records", True, True),
    "user.financial.bank_account": ("customer_records", True, True),
    "user.financial.credit_card": ("customer_records", True, True),
    "user.payment": ("customer_records", False, True),
    "user.government_id": ("sensitive_personal_information", True, True),
    "user.authorization.credentials": ("sensitive_personal_information", True, True),
    "user.authorization.password": ("sensitive_personal_information", True, True),
    "user.authorization.biometric": ("biometric_information", True, True),
    "user.credentials": ("sensitive_personal_information", True, True),
    "user.credentials.biometric_credentials": ("biometric_information", True, True),
    "user.biometric": ("biometric_information", True, True),
    "user.biometric_health": ("biometric_information", True, True),
    "user.health_and_medical": ("sensitive_personal_information", False, True),
    "user.health_and_medical.insurance_beneficiary_id": ("sensitive_personal_information", True, True),
    "user.health_and_medical.record_id": ("sensitive_personal_information", True, True),
    "user.genetic": ("sensitive_personal_information", False, True),
}
# Older Fides files spell where the data came from into the category; the rest is the same tree.
LEGACY_PREFIXES = (
    ("user.provided.identifiable.", True),
    ("user.provided.nonidentifiable.", True),
    ("user.derived.identifiable.", False),
    ("user.derived.nonidentifiable.", False),
)
# What an unmapped personal category is written as (and said so in a note): the §1798.80(e) list
# is the widest of the CCPA categories.
FALLBACK_CATEGORY = "customer_records"
# Words in a category or a field's name that mean a secret, when the category itself says nothing.
SECRET_TOKENS = {
    "password", "passwd", "credential", "credentials", "secret", "ssn", "passport", "biometric", "pin", "cvv", "cvc",
}  # fmt: skip
SECRET_PAIRS = {
    "account_number", "card_number", "credit_card", "bank_account", "security_question", "security_answer",
    "drivers_license", "social_security",
}  # fmt: skip
# When one field carries several categories it is written with the one that protects most.
CATEGORY_PRIORITY = (
    "sensitive_personal_information", "biometric_information", "geolocation_data", "protected_classifications",
    "customer_records", "identifiers", "commercial_information", "internet_activity", "sensory_data",
    "professional_information", "education_information", "inferences", NOT_PERSONAL,
)  # fmt: skip
IDENTITY_MAP = {
    "email": "email",
    "phone_number": "phone",
    "phone": "phone",
    "customer_number": "customer_number",
    "customer_id": "customer_number",
    "account_id": "account_id",
    "user_id": "account_id",
}
# Fides masking strategies -> this map's erasure strategies (part 2).
MASKING_MAP = {
    "null_rewrite": "null",
    "string_rewrite": "fixed",
    "random_string_rewrite": "random",
    "hash": "hash",
    "hmac": "hash",
}
IMPORT_KINDS = ("sql", "http", "manual")  # a django system names its models, which Fides does not know
PLACEHOLDER_OWNER = "data-owner@example.com"
META_KEYS = ("fides_meta", "fidesops_meta")


class FidesFormatError(Exception):
    """The file is not a Fides dataset file at all (the message says why, with the line)."""


@dataclass(frozen=True)
class FidesNote:
    message: str
    dataset: str = ""
    collection: str = ""
    field: str = ""

    @property
    def where(self) -> str:
        parts = [
            f"dataset '{self.dataset}'" if self.dataset else "",
            f"collection '{self.collection}'" if self.collection else "",
            f"field '{self.field}'" if self.field else "",
        ]
        return " › ".join(p for p in parts if p)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class FidesImport:
    source: str
    document: dict[str, Any]
    notes: list[FidesNote] = field(default_factory=list)

    def yaml_text(self) -> str:
        """The map as this product's YAML, with the notes as comments at the top for its reviewer."""
        header = [
            f"# Data map imported from the Fides dataset file {_one_line(self.source)} by",
            "# `python manage.py dsr_datamap import-fides`. Review it before use: each system's owner, and its",
            "# sources, purposes, recipients and retention, which a Fides dataset does not hold (§1798.110(c)).",
        ]
        if self.notes:
            header.append("# Not carried over exactly (check each):")
            header.extend(f"#  - {_one_line(str(note))}" for note in self.notes)
        body = yaml.dump(self.document, Dumper=_MapDumper, sort_keys=False, allow_unicode=True, width=110)
        return "\n".join(header) + "\n" + body


class _Flow(dict):
    """Written on one line: a field's spec, identities, a connection."""


class _MapDumper(yaml.SafeDumper):
    pass


_MapDumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)
)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _tokens(*texts: str) -> tuple[set[str], set[str]]:
    words = [w for t in texts for w in re.split(r"[^a-z0-9]+", t.lower()) if w]
    return set(words), {f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)}


def _looks_secret(*texts: str) -> bool:
    words, pairs = _tokens(*texts)
    return bool(words & SECRET_TOKENS or pairs & SECRET_PAIRS)


@dataclass(frozen=True)
class _Mapped:
    category: str
    never_disclose: bool
    provided: bool
    exact: bool  # False: no CCPA equivalent was found, the fallback was written


def category_convert(fides_category: str) -> _Mapped:
    """One Fides data category as this map's category and flags."""
    name = fides_category.strip()
    provided_by_name: bool | None = None
    for prefix, provided in LEGACY_PREFIXES:
        if name.startswith(prefix):
            name, provided_by_name = "user." + name[len(prefix) :], provided
            break
    for legacy_root in ("user.provided.identifiable", "user.provided.nonidentifiable", "user.provided", "user.derived"):
        if name == legacy_root:
            name = "user"
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        mapped = CATEGORY_MAP.get(".".join(parts[:end]))
        if mapped:
            category, never, provided = mapped
            return _Mapped(category, never, provided if provided_by_name is None else provided_by_name, True)
    return _Mapped(FALLBACK_CATEGORY, _looks_secret(name), bool(provided_by_name), False)


def _strongest(categories: list[str]) -> str:
    return min(categories, key=CATEGORY_PRIORITY.index)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_") or "unnamed"
    if not slug[0].isalpha():
        slug = "c_" + slug
    return slug[:63]


def _meta(item: dict) -> dict:
    for key in META_KEYS:
        if isinstance(item.get(key), dict):
            return item[key]
    return {}


@dataclass
class _FieldOut:
    name: str
    spec: dict[str, Any]
    identity: str = ""  # this map's identity kind
    primary_key: bool = False


@dataclass
class _Converter:
    kind: str
    owner: str
    dsn_env: str
    notes: list[FidesNote] = field(default_factory=list)

    def note(self, message: str, dataset: str = "", collection: str = "", field_name: str = "") -> None:
        self.notes.append(FidesNote(message, dataset, collection, field_name))

    # -- fields --

    def categories(self, raw: Any, dataset: str, collection: str, field_name: str) -> list[str]:
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            self.note("'data_categories' is not a list of names; read as none", dataset, collection, field_name)
            return []
        return raw

    def field_spec(self, dataset: str, collection: str, item: dict) -> _FieldOut | None:
        raw_name = item.get("name")
        if not isinstance(raw_name, str) or not raw_name:
            self.note("a field without a name is left out", dataset, collection)
            return None
        name = raw_name
        meta = _meta(item)
        if not COLUMN_RE.match(name):
            self.note(
                "the name cannot be written in this map (letters, digits and underscores, at most 63); "
                "left out: classify the column by hand",
                dataset,
                collection,
                name,
            )
            return None
        fides_categories = self.categories(item.get("data_categories"), dataset, collection, name)
        children = item.get("fields")
        nested: list[tuple[str, list[str], dict]] = []
        if isinstance(children, list) and children:
            nested = self.nested(dataset, collection, name, children)
            fides_categories = fides_categories + [c for _, cats, _ in nested for c in cats]
        mapped = [category_convert(c) for c in fides_categories]
        for fides_category, result in zip(fides_categories, mapped, strict=True):
            if not result.exact:
                self.note(
                    f"Fides category '{fides_category}' has no CCPA equivalent here; written as {result.category}"
                    + (" and never disclosed" if result.never_disclose else ""),
                    dataset,
                    collection,
                    name,
                )
        categories = [m.category for m in mapped] or [NOT_PERSONAL]
        category = _strongest(categories)
        personal = [c for c in dict.fromkeys(categories) if c != NOT_PERSONAL]
        if len(personal) > 1:
            self.note(
                f"carries {', '.join(personal)}; written as {category} (a field has one category here)",
                dataset,
                collection,
                name,
            )
        never_disclose = any(m.never_disclose for m in mapped)
        provided = any(m.provided for m in mapped if m.category != NOT_PERSONAL)
        if nested:
            self.note(
                f"nested fields ({', '.join(path for path, _, _ in nested)}) are classified as the one field "
                f"'{name}' ({category}{', never disclosed' if never_disclose else ''})",
                dataset,
                collection,
                name,
            )
        identity = ""
        fides_identity = meta.get("identity")
        if fides_identity:
            identity = IDENTITY_MAP.get(str(fides_identity), "")
            if not identity:
                self.note(
                    f"identity '{fides_identity}' has no equivalent (this map finds a person by "
                    f"{', '.join(sorted(set(IDENTITY_MAP.values())))}); not used as an identity",
                    dataset,
                    collection,
                    name,
                )
            elif never_disclose:
                self.note(
                    f"is the '{fides_identity}' identity but its category is never disclosed; not used as an identity",
                    dataset,
                    collection,
                    name,
                )
                identity = ""
            elif category == NOT_PERSONAL:
                self.note(
                    f"is the '{fides_identity}' identity, so it is personal information: written as identifiers",
                    dataset,
                    collection,
                    name,
                )
                category, provided = "identifiers", True
        if category != NOT_PERSONAL and not never_disclose and _looks_secret(name):
            self.note(
                "the name suggests a secret but no category says so: check whether it is never_disclose",
                dataset,
                collection,
                name,
            )
        spec: dict[str, Any] = {"category": category}
        if provided:
            spec["provided"] = True
        if never_disclose:
            spec["never_disclose"] = True
        erasure = self.erasure(meta, dataset, collection, name)
        if erasure and category != NOT_PERSONAL:
            spec["erasure"] = erasure
        if meta.get("read_only"):
            self.note(
                "read-only in Fides: give it 'erasure: keep' with its 'keep_reason' (the legal basis) here",
                dataset,
                collection,
                name,
            )
        description = item.get("description")
        if isinstance(description, str) and description.strip():
            spec["description"] = _one_line(description)
        return _FieldOut(name=name, spec=spec, identity=identity, primary_key=bool(meta.get("primary_key")))

    def nested(self, dataset: str, collection: str, parent: str, children: list) -> list[tuple[str, list[str], dict]]:
        """Every nested field under `parent` as (dotted path, its categories), noting what cannot be
        carried by a flat map: an identity, a reference or a primary key inside an object."""
        found: list[tuple[str, list[str], dict]] = []
        queue: deque[tuple[str, Any]] = deque((parent, child) for child in children)
        while queue:
            prefix, child = queue.popleft()
            if not isinstance(child, dict) or not isinstance(child.get("name"), str):
                continue
            path = f"{prefix}.{child['name']}"
            meta = _meta(child)
            cats = self.categories(child.get("data_categories"), dataset, collection, path)
            found.append((path, cats, meta))
            if meta.get("identity"):
                self.note(
                    f"identity '{meta['identity']}' on the nested field '{path}' cannot be searched by this map; "
                    "not used",
                    dataset,
                    collection,
                    parent,
                )
            if meta.get("references"):
                self.note(
                    f"references from the nested field '{path}' cannot be followed by this map; left out",
                    dataset,
                    collection,
                    parent,
                )
            for grandchild in child.get("fields") or []:
                queue.append((path, grandchild))
        return found

    def erasure(self, meta: dict, dataset: str, collection: str, name: str) -> str:
        override = meta.get("masking_strategy_override")
        if not isinstance(override, dict):
            return ""
        strategy = str(override.get("strategy", ""))
        erasure = MASKING_MAP.get(strategy, "")
        if not erasure:
            self.note(f"masking strategy '{strategy}' has no erasure equivalent; left out", dataset, collection, name)
        return erasure

    # -- collections and references --

    def collection(self, dataset: str, item: Any, index: int) -> tuple[dict[str, Any], dict[str, _FieldOut]] | None:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            self.note(f"collection #{index + 1} has no name; left out", dataset)
            return None
        original = item["name"]
        name = _slug(original)
        meta = _meta(item)
        if meta.get("skip_processing"):
            self.note("skip_processing in Fides: left out of the map", dataset, original)
            return None
        for key in ("after", "erase_after", "masking_strategy_override", "partitioning"):
            if meta.get(key):
                self.note(f"'{key}' has no equivalent here; ignored", dataset, original)
        raw_fields = item.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            self.note("no fields; left out", dataset, original)
            return None
        fields: dict[str, _FieldOut] = {}
        for raw in raw_fields:
            if not isinstance(raw, dict):
                self.note("a field that is not a mapping is left out", dataset, original)
                continue
            converted = self.field_spec(dataset, original, raw)
            if converted and converted.name in fields:
                self.note("named twice; the second is left out", dataset, original, converted.name)
            elif converted:
                fields[converted.name] = converted
        if not fields:
            self.note("no field could be converted; left out", dataset, original)
            return None
        out: dict[str, Any] = {"name": name}
        if name != original:
            if self.kind == "sql" and not COLUMN_RE.match(original):
                self.note(
                    f"the table name cannot be written in this map; named '{name}', check 'table'", dataset, original
                )
            out["table"] = original
        if isinstance(item.get("description"), str) and item["description"].strip():
            out["description"] = _one_line(item["description"])
        keys = [f.name for f in fields.values() if f.primary_key]
        if len(keys) > 1:
            self.note(f"a primary key of several fields ({', '.join(keys)}); '{keys[0]}' used", dataset, original)
        if keys:
            out["primary_key"] = keys[0]
        elif "id" in fields:
            out["primary_key"] = "id"
        elif "_id" in fields:
            out["primary_key"] = "_id"
        else:
            first = next(iter(fields))
            self.note(f"no primary key given; '{first}' used", dataset, original)
            out["primary_key"] = first
        identities: dict[str, str] = {}
        for converted in fields.values():
            if not converted.identity:
                continue
            if converted.identity in identities:
                self.note(
                    f"a second '{converted.identity}' identity; this map finds a person by one field per kind, "
                    f"'{identities[converted.identity]}' is used",
                    dataset,
                    original,
                    converted.name,
                )
            else:
                identities[converted.identity] = converted.name
        if identities:
            out["identities"] = _Flow(identities)
        out["fields"] = {
            f.name: (f.spec["category"] if list(f.spec) == ["category"] else _Flow(f.spec)) for f in fields.values()
        }
        return out, fields

    def references(
        self,
        dataset: str,
        fides_key: str,
        raw_collections: list,
        names: dict[str, str],
        fields: dict[str, dict[str, _FieldOut]],
    ) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str]]]:
        """The directed references (source coll, field, target coll, field) and the undirected ones,
        in this map's collection names."""
        directed: list[tuple[str, str, str, str]] = []
        undirected: list[tuple[str, str, str, str]] = []
        for item in raw_collections:
            if not isinstance(item, dict) or item.get("name") not in names:
                continue
            for raw_field in item.get("fields") or []:
                if not isinstance(raw_field, dict) or not isinstance(raw_field.get("name"), str):
                    continue
                refs = _meta(raw_field).get("references") or raw_field.get("references") or []
                for ref in refs if isinstance(refs, list) else []:
                    edge = self.reference(dataset, fides_key, item["name"], raw_field["name"], ref, names, fields)
                    if edge is None:
                        continue
                    direction, edge_tuple = edge
                    bucket = undirected if direction == "" else directed
                    if edge_tuple not in directed and edge_tuple not in undirected:
                        bucket.append(edge_tuple)
        return directed, undirected

    def reference(
        self,
        dataset: str,
        fides_key: str,
        collection: str,
        field_name: str,
        ref: Any,
        names: dict[str, str],
        fields: dict[str, dict[str, _FieldOut]],
    ) -> tuple[str, tuple[str, str, str, str]] | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("field"), str):
            self.note("a reference without 'field' is left out", dataset, collection, field_name)
            return None
        target_dataset = ref.get("dataset") or fides_key
        target = ref["field"]
        if target_dataset != fides_key:
            self.note(
                f"the reference to {target_dataset}.{target} crosses into another dataset (another system "
                "here, searched by its own identities); left out",
                dataset,
                collection,
                field_name,
            )
            return None
        parts = target.split(".")
        if len(parts) != 2:
            self.note(
                f"the reference to '{target}' names a nested field, which this map cannot follow; left out",
                dataset,
                collection,
                field_name,
            )
            return None
        target_collection, target_field = parts
        if target_collection not in names or target_field not in fields.get(names[target_collection], {}):
            self.note(
                f"the reference to '{target}' names no converted collection and field; left out",
                dataset,
                collection,
                field_name,
            )
            return None
        if field_name not in fields.get(names[collection], {}):
            return None  # the field itself was left out, and said so
        if target_collection == collection:
            self.note(
                f"the reference to '{target}' stays in its own collection, which one query cannot follow; left out",
                dataset,
                collection,
                field_name,
            )
            return None
        direction = ref.get("direction") or ""
        here = (names[collection], field_name)
        there = (names[target_collection], target_field)
        if direction == "from":  # the value flows from the referenced field into this one
            return "from", (*there, *here)
        if direction == "to":
            return "to", (*here, *there)
        if direction:
            self.note(f"unknown reference direction '{direction}'; left out", dataset, collection, field_name)
            return None
        return "", (*here, *there)

    def orient(
        self,
        dataset: str,
        order: list[str],
        identified: set[str],
        directed: list[tuple[str, str, str, str]],
        undirected: list[tuple[str, str, str, str]],
    ) -> list[tuple[str, str, str, str]]:
        """Give each reference without a direction the one a search from the identities takes: from
        the collection reached first (nearer an identity) to the other."""
        distance = dict.fromkeys(identified, 0)
        queue = deque(sorted(identified, key=order.index))
        while queue:
            current = queue.popleft()
            neighbours = [e[2] for e in directed if e[0] == current]
            neighbours += [e[2] for e in undirected if e[0] == current] + [e[0] for e in undirected if e[2] == current]
            for other in neighbours:
                if other not in distance:
                    distance[other] = distance[current] + 1
                    queue.append(other)
        far = len(order) + 1
        oriented = []
        for edge in undirected:
            a, b = edge[0], edge[2]
            key_a, key_b = (distance.get(a, far), order.index(a)), (distance.get(b, far), order.index(b))
            chosen = edge if key_a <= key_b else (edge[2], edge[3], edge[0], edge[1])
            self.note(
                f"the reference {edge[0]}.{edge[1]} – {edge[2]}.{edge[3]} has no direction; followed as "
                f"{chosen[0]}.{chosen[1]} -> {chosen[2]}.{chosen[3]}",
                dataset,
            )
            oriented.append(chosen)
        return oriented

    # -- datasets --

    def dataset(self, item: Any, index: int) -> dict[str, Any] | None:
        if not isinstance(item, dict) or not isinstance(item.get("fides_key"), str) or not item["fides_key"]:
            self.note(f"dataset #{index + 1} has no fides_key; left out")
            return None
        fides_key = item["fides_key"]
        name = _slug(fides_key)
        raw_collections = item.get("collections")
        if not isinstance(raw_collections, list) or not raw_collections:
            self.note("no collections; left out", fides_key)
            return None
        collections: list[dict[str, Any]] = []
        names: dict[str, str] = {}  # Fides collection name -> this map's
        fields: dict[str, dict[str, _FieldOut]] = {}
        for position, raw in enumerate(raw_collections):
            converted = self.collection(fides_key, raw, position)
            if converted is None:
                continue
            out, out_fields = converted
            if out["name"] in fields:
                self.note(f"named '{out['name']}' here like another collection; left out", fides_key, raw["name"])
                continue
            names[raw["name"]] = out["name"]
            fields[out["name"]] = out_fields
            collections.append(out)
        if not collections:
            self.note("no collection could be converted; left out", fides_key)
            return None
        directed, undirected = self.references(fides_key, fides_key, raw_collections, names, fields)
        order = [c["name"] for c in collections]
        identified = {c["name"] for c in collections if c.get("identities")}
        edges = directed + self.orient(fides_key, order, identified, directed, undirected)
        system: dict[str, Any] = {"name": name}
        description = item.get("description") or item.get("name")
        if isinstance(description, str) and description.strip():
            system["description"] = _one_line(description)
        system["owner"] = self.owner
        system["kind"] = self.kind
        system["connection"] = _Flow(self.connection(name, item))
        system["sources"] = []
        system["purposes"] = []
        system["recipients"] = []
        retention = item.get("retention")
        system["retention"] = _one_line(retention) if isinstance(retention, str) else ""
        if edges:
            system["references"] = [f"{a}.{b} -> {c}.{d}" for a, b, c, d in edges]
        system["collections"] = collections
        return system

    def connection(self, name: str, item: dict) -> dict[str, Any]:
        stem = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
        if self.kind == "sql":
            connection: dict[str, Any] = {"dsn_env": self.dsn_env or f"{stem}_DSN"}
            namespace = _meta(item).get("namespace")
            if isinstance(namespace, dict) and isinstance(namespace.get("schema"), str):
                connection["schema"] = namespace["schema"]
            return connection
        if self.kind == "http":
            return {"url_env": f"{stem}_URL", "secret_env": f"{stem}_SECRET"}
        return {}


def fides_datamap_convert(
    content: bytes | str,
    *,
    source: str = "<fides file>",
    kind: str = "sql",
    dsn_env: str = "",
    owner: str = "",
) -> FidesImport:
    """A Fides dataset file as this product's data map document, with notes on what did not map.
    Raises FidesFormatError when the file is not a Fides dataset file (or holds none that converts);
    the caller validates the document with the loader before writing it."""
    if kind not in IMPORT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(IMPORT_KINDS)}")
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
        document = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise FidesFormatError("the file is not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise FidesFormatError(f"{where}not valid YAML ({getattr(error, 'problem', None) or error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("dataset"), list):
        raise FidesFormatError("a Fides dataset file is a mapping with a 'dataset' list")
    datasets = document["dataset"]
    if not datasets:
        raise FidesFormatError("the 'dataset' list is empty")
    converter = _Converter(kind=kind, owner=owner or PLACEHOLDER_OWNER, dsn_env=dsn_env)
    for other in document:
        if other != "dataset":
            converter.note(f"the file's '{other}' section is not a dataset; ignored")
    if not owner:
        converter.note(f"no --owner given: every system's owner is written as {PLACEHOLDER_OWNER}; set it")
    systems: list[dict[str, Any]] = []
    for index, item in enumerate(datasets):
        system = converter.dataset(item, index)
        if system and any(s["name"] == system["name"] for s in systems):
            converter.note(f"named '{system['name']}' here like another dataset; left out", item.get("fides_key", ""))
        elif system:
            systems.append(system)
    if not systems:
        raise FidesFormatError("no dataset could be converted:\n" + "\n".join(f"  {note}" for note in converter.notes))
    return FidesImport(source=source, document={"version": 1, "systems": systems}, notes=converter.notes)
