"""`python manage.py dsr_datamap check|show|import-fides`: the data map's command line.

- `check` validates the map (exit 1 listing each problem by file, line, system, collection and
  field), then tests every system's connection with its connector's health check and records the
  result the dashboard shows (exit 1 naming the failing systems); `--offline` skips the connections.
- `show` prints the map for a reviewer, or as stable JSON for a machine.
- `import-fides` converts a Fides dataset file into this map's format, validated before it is
  written (dsr/fulfilment/fides.py does the conversion)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.core.validators import validate_email
from django.db import DatabaseError

from dsr.fulfilment.categories import category_label
from dsr.fulfilment.datamap import ENV_NAME_RE, DataMap, DataMapError, System, datamap_load, datamap_parse
from dsr.fulfilment.fides import IMPORT_KINDS, FidesFormatError, fides_datamap_convert
from dsr.fulfilment.services.health import systems_health_check

JSON_FORMAT_VERSION = 1


class Command(BaseCommand):
    help = (
        "The data map: 'check' validates it and tests every system's connection (exit 1 naming what "
        "failed), 'show' prints it, 'import-fides' converts a Fides dataset file into it."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="check|show|import-fides")
        check = actions.add_parser("check", help="validate the map, then test each system's connection")
        check.add_argument("--file", help="the map to check (default: the DSR_DATAMAP setting)")
        check.add_argument("--offline", action="store_true", help="validate only; do not connect to the systems")
        show = actions.add_parser("show", help="print the map")
        show.add_argument("--file", help="the map to print (default: the DSR_DATAMAP setting)")
        show.add_argument("--format", choices=("text", "json"), default="text")
        fides = actions.add_parser("import-fides", help="convert a Fides dataset YAML file into this map's format")
        fides.add_argument("fides_file", metavar="FILE", help="the Fides dataset file (a top-level 'dataset:' list)")
        fides.add_argument("--output", help="write the map here instead of to standard output")
        fides.add_argument("--kind", choices=IMPORT_KINDS, default="sql", help="the systems' connector kind")
        fides.add_argument("--dsn-env", default="", help="sql: the environment variable holding the DSN")
        fides.add_argument("--owner", default="", help="the systems' owner (an email address)")
        fides.add_argument("--force", action="store_true", help="overwrite --output if it exists")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "check":
            self.check_map(options.get("file"), offline=options.get("offline", False))
        elif action == "show":
            self.show_map(options.get("file"), output_format=options.get("format") or "text")
        else:
            self.import_fides(options)

    # --- helpers ---------------------------------------------------------------------------------

    def fail(self, message: str) -> None:
        self.stderr.write(message)
        sys.exit(1)

    def load(self, path: str | None) -> DataMap:
        try:
            return datamap_load(path)
        except DataMapError as error:
            for problem in error.problems:
                self.stderr.write(_problem_line(error.path, problem))
            self.fail(f"The data map {error.path} does not validate: {len(error.problems)} problem(s).")
            raise  # unreachable: fail() exits

    # --- check -----------------------------------------------------------------------------------

    def check_map(self, path: str | None, *, offline: bool) -> None:
        datamap = self.load(path)
        collections = sum(len(s.collections) for s in datamap.systems)
        self.stdout.write(
            f"Data map {datamap.path} is valid: {len(datamap.systems)} system(s), {collections} collection(s), "
            f"version {datamap.version[:12]}."
        )
        if offline:
            self.stdout.write("Connections not tested (--offline).")
            return
        configured = os.path.realpath(settings.DSR_DATAMAP) == os.path.realpath(datamap.path)
        try:
            results = systems_health_check(datamap, record=configured)
        except DatabaseError as error:  # the checks still tell; only the dashboard's record is missing
            self.stderr.write(f"Warning: the results could not be recorded for the dashboard ({error}).")
            results = systems_health_check(datamap, record=False)
        width = max(len(name) for name in results)
        for system in datamap.systems:
            health = results[system.name]
            latency = f"{health.latency_ms:.1f} ms" if health.latency_ms is not None else "-"
            state = "ok" if health.ok else "FAILING"
            line = f"  {system.name:<{width}}  {system.kind:<6}  {state:<7}  {latency:>10}  {_one_line(health.detail)}"
            self.stdout.write(line.rstrip())
        if not configured:
            self.stdout.write("Not recorded on the dashboard: this is not the configured map (DSR_DATAMAP).")
        failing = [name for name, health in results.items() if not health.ok]
        if failing:
            self.fail(f"{len(failing)} of {len(results)} system(s) failing: {', '.join(failing)}.")
        self.stdout.write(f"All {len(results)} system(s) answer.")

    # --- show ------------------------------------------------------------------------------------

    def show_map(self, path: str | None, *, output_format: str) -> None:
        datamap = self.load(path)
        if output_format == "json":
            self.stdout.write(json.dumps(datamap_describe(datamap), indent=2, ensure_ascii=False))
            return
        self.stdout.write(f"Data map: {datamap.path}")
        self.stdout.write(f"Version:  {datamap.version} (SHA-256 of the file)")
        self.stdout.write(f"Systems:  {len(datamap.systems)}")
        for system in datamap.systems:
            self.stdout.write("")
            for line in _system_text(system):
                self.stdout.write(line)

    # --- import-fides ----------------------------------------------------------------------------

    def import_fides(self, options: dict[str, Any]) -> None:
        source = Path(options["fides_file"])
        output = Path(options["output"]) if options.get("output") else None
        owner, dsn_env, kind = options.get("owner") or "", options.get("dsn_env") or "", options.get("kind") or "sql"
        if owner:
            try:
                validate_email(owner)
            except ValidationError:
                self.fail(f"--owner {owner!r} is not an email address.")
        if dsn_env and not ENV_NAME_RE.match(dsn_env):
            self.fail(f"--dsn-env {dsn_env!r} is the name of an environment variable (A-Z, 0-9, _), not its value.")
        if dsn_env and kind != "sql":
            self.fail("--dsn-env is for --kind sql.")
        if output and output.exists() and not options.get("force"):
            self.fail(f"{output} exists; give --force to overwrite it.")
        if output and not output.parent.is_dir():
            self.fail(f"{output.parent} is not a directory.")
        try:
            content = source.read_bytes()
        except OSError as error:
            self.fail(f"{source} cannot be read ({error.strerror or error}).")
        try:
            imported = fides_datamap_convert(content, source=source.name, kind=kind, dsn_env=dsn_env, owner=owner)
        except FidesFormatError as error:
            self.fail(f"{source} is not a Fides dataset file we can import: {error}")
        systems = imported.document["systems"]
        if dsn_env and len(systems) > 1:
            self.fail(
                f"--dsn-env names one variable but {source} holds {len(systems)} datasets; leave it out and each "
                "system gets its own (<NAME>_DSN)."
            )
        for note in imported.notes:
            self.stderr.write(f"{source}: {note}")
        text = imported.yaml_text()
        try:  # what is written must load: the same loader reads it at run time
            datamap_parse(text.encode(), path=str(output or "<imported map>"))
        except DataMapError as error:
            for problem in error.problems:
                self.stderr.write(f"  {problem.where}: {problem.message}" if problem.where else f"  {problem.message}")
            self.fail(
                f"The map converted from {source} would not load ({len(error.problems)} problem(s) above); "
                "nothing written. Fix the Fides file or write those parts of the map by hand."
            )
        collections = sum(len(s["collections"]) for s in systems)
        summary = (
            f"Converted {source}: {len(systems)} system(s), {collections} collection(s); "
            f"{len(imported.notes)} note(s) to review"
        )
        if output is None:
            self.stdout.write(text, ending="")
            self.stderr.write(summary + ".")
            return
        _write_atomically(output, text)
        self.stderr.write(f"{summary} (also at the top of the file). Written to {output}.")


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _problem_line(path: str, problem) -> str:
    at = f"{path}:{problem.line}" if problem.line else path
    return f"{at}: {problem.where}: {problem.message}" if problem.where else f"{at}: {problem.message}"


def _location(system: System, collection) -> str:
    if system.kind == "sql":
        return f"table {collection.location}"
    if system.kind == "django":
        return f"model {collection.location}"
    return f"called {collection.location} there" if collection.location != collection.name else ""


def _flags(field) -> str:
    flags = []
    if field.never_disclose:
        flags.append("never disclosed (§7024(d): said to be held, not shown)")
    if field.provided:
        flags.append("provided")
    if field.others_data:
        flags.append("others' data (Art 15(4))")
    if field.erasure:
        flags.append(f"erasure: {field.erasure}" + (f" ({field.keep_reason})" if field.keep_reason else ""))
    if field.corrects:
        flags.append(f"corrects: {field.corrects}")
    return "; ".join(flags)


def _system_text(system: System) -> list[str]:
    label = "  {:<13}".format
    lines = [f"{system.name} — {system.kind}"]
    if system.description:
        lines.append(f"  {_one_line(system.description)}")
    lines.append(label("Owner:") + system.owner)
    connection = ", ".join(f"{k}={v}" for k, v in system.connection.items())
    lines.append(label("Connection:") + (connection or "(none)"))

    def listed(title: str, items: list[str]) -> None:
        if not items:
            lines.append(label(title) + "(none given)")
            return
        lines.append(label(title) + items[0])
        lines.extend(label("") + item for item in items[1:])

    listed("Categories:", [f"{category_label(c)} [{c}]" for c in system.categories])
    listed("Sources:", [_one_line(s) for s in system.sources])
    listed("Purposes:", [_one_line(p) for p in system.purposes])
    listed(
        "Recipients:",
        [
            _one_line(
                f"{r.name} ({r.category})"
                + (f" — {r.purpose}" if r.purpose else "")
                + (f" — told at {r.contact}" if r.contact else "")
                + (f" — told through {r.system}" if r.system else "")
                + (" — sold" if r.sold else "")
                + (" — shared" if r.shared else "")
            )
            for r in system.recipients
        ],
    )
    lines.append(
        label("Sold/shared:")
        + f"{'sold' if system.sold else 'not sold'}; {'shared' if system.shared else 'not shared'}"
    )
    lines.append(label("Retention:") + (_one_line(system.retention) or "(none given)"))
    listed("References:", [str(r) for r in system.references])
    lines.append("  Collections, in search order:")
    for collection in system.search_order():
        where = ", ".join(p for p in (_location(system, collection), f"primary key {collection.primary_key}") if p)
        lines.append(f"    {collection.name} ({where})")
        if collection.description:
            lines.append(f"      {_one_line(collection.description)}")
        if collection.identities:
            found = ", ".join(f"{kind} = {column}" for kind, column in collection.identities.items())
        else:
            found = "through " + ", ".join(str(r) for r in system.references_into(collection.name))
        lines.append(f"      found by:  {found}")
        lines.append(f"      dated by:  {collection.dated_by or '(not dated: every record is in any look-back)'}")
        if collection.flags:
            lines.append("      flags:     " + ", ".join(f"{a} = {f}" for a, f in collection.flags.items()))
        width = max(len(f.name) for f in collection.fields)
        category_width = max(len(f.category) for f in collection.fields)
        for field in collection.fields:
            lines.append(f"      {field.name:<{width}}  {field.category:<{category_width}}  {_flags(field)}".rstrip())
    return lines


def datamap_describe(datamap: DataMap) -> dict[str, Any]:
    """The map as plain data for `show --format json`: every key always present, in the map's order."""
    return {
        "format": JSON_FORMAT_VERSION,
        "path": datamap.path,
        "version": datamap.version,
        "systems": [
            {
                "name": s.name,
                "kind": s.kind,
                "owner": s.owner,
                "description": s.description,
                "connection": dict(s.connection),
                "categories": [{"slug": c, "label": category_label(c)} for c in s.categories],
                "sources": list(s.sources),
                "purposes": list(s.purposes),
                "recipients": [
                    {
                        "name": r.name,
                        "category": r.category,
                        "purpose": r.purpose,
                        "sold": r.sold,
                        "shared": r.shared,
                        "contact": r.contact or None,
                        "system": r.system or None,
                    }
                    for r in s.recipients
                ],
                "sold": s.sold,
                "shared": s.shared,
                "retention": s.retention,
                "references": [str(r) for r in s.references],
                "search_order": [c.name for c in s.search_order()],
                "collections": [
                    {
                        "name": c.name,
                        "location": c.location,
                        "description": c.description,
                        "primary_key": c.primary_key,
                        "identities": dict(c.identities),
                        "dated_by": c.dated_by or None,
                        "categories": list(c.categories),
                        "flags": dict(c.flags),
                        "fields": [
                            {
                                "name": f.name,
                                "category": f.category,
                                "personal": f.personal,
                                "provided": f.provided,
                                "never_disclose": f.never_disclose,
                                "others_data": f.others_data,
                                "erasure": f.erasure or None,
                                "keep_reason": f.keep_reason or None,
                                "corrects": f.corrects or None,
                                "description": f.description,
                            }
                            for f in c.fields
                        ],
                    }
                    for c in s.collections
                ],
            }
            for s in datamap.systems
        ],
    }
