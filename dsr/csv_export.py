"""The one CSV writer of the product. A spreadsheet runs a cell that starts with =, +, -, @ (or a
tab or line break before one) as a formula, so such text cells get a leading apostrophe, which
spreadsheets read as "this is text" (OWASP CSV injection; ASVS 5.0 1.2.10). Numbers and dates the
product writes stay as they are, negative ones included."""

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# OWASP's list, the NUL of ASVS, line feed, and the full-width forms some spreadsheets also honour.
FORMULA_START = frozenset("=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20")
# A plain number cannot be a formula: "-3" or "+1.5" stays readable as a number.
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def csv_cell(value):
    """The value as a spreadsheet will read it as data, never as a formula."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, Decimal, date, datetime)):
        return value
    text = str(value)
    if not text or _NUMBER.fullmatch(text):
        return text
    if text[0] in FORMULA_START or text.lstrip()[:1] in FORMULA_START:
        return "'" + text
    return text


class SafeCsvWriter:
    """csv.writer with every cell passed through csv_cell; the csv module quotes separators,
    quotes and line breaks inside a cell, so none can start a new cell."""

    def __init__(self, stream):
        self._writer = csv.writer(stream)

    def writerow(self, row):
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def csv_writer(stream) -> SafeCsvWriter:
    return SafeCsvWriter(stream)


class CsvUnreadable(ValueError):
    """Text the csv module cannot read as rows (an unclosed quote, a NUL…)."""


def csv_rows(text: str) -> Iterator[list[str]]:
    """The rows of an uploaded CSV text (a manual system owner's export), separated by commas,
    semicolons or tabs as the spreadsheet wrote them (the first line decides). Reading only: what
    the product writes goes through csv_writer. Raises CsvUnreadable."""
    first_line = text[:4096].splitlines()[0] if text.strip() else ""
    try:
        dialect: Any = csv.Sniffer().sniff(first_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        yield from csv.reader(io.StringIO(text, newline=""), dialect)
    except csv.Error as error:
        raise CsvUnreadable(str(error)) from None
