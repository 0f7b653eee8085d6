"""The demo shop that run mode searches: the `shop` system of config/datamap.yaml, as a database of
the same shape as the bench's customers.sql (customer, orders, newsletter_subscriptions,
chat_messages, call_records), holding the demo customers `dsr_demo_load` creates and a few others.
Chat messages and call notes name other people, so the package's redaction (Art 15(4)) shows.
Made by `manage.py dsr_demo_shop` (SQLite under var/ in run mode); safe to run again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine, make_url

# A bigint key everywhere but SQLite, where only INTEGER PRIMARY KEY numbers rows itself.
BigKey = BigInteger().with_variant(Integer(), "sqlite")
TABLES = ("customer", "orders", "newsletter_subscriptions", "chat_messages", "call_records")


def shop_metadata(schema: str | None = None, *, unique_email: bool = True) -> MetaData:
    """The shop's tables, as customers.sql creates them, with an index on every identity and
    reference field the search queries (docs/connectors-sql.md)."""
    metadata = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    Table(
        "customer", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", Text, unique=unique_email, index=not unique_email),
        Column("name", Text), Column("phone", Text), Column("address_line", Text), Column("city", Text),
        Column("postal_code", Text), Column("country", Text), Column("date_of_birth", Date),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    Table(
        "orders", metadata,
        Column("id", BigKey, primary_key=True),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id"), nullable=False),
        Column("ordered_at", DateTime(timezone=True), nullable=False),
        Column("status", Text, nullable=False), Column("total_cents", Integer, nullable=False),
        Column("shipping_name", Text), Column("shipping_address", Text),
        Index("orders_customer_id_idx", "customer_id"),
    )  # fmt: skip
    Table(
        "newsletter_subscriptions", metadata,
        Column("id", BigKey, primary_key=True),
        Column("email", Text), Column("list_name", Text, nullable=False),
        Column("subscribed_at", DateTime(timezone=True), nullable=False), Column("ip_address", Text),
        Index("newsletter_email_idx", "email"),
    )  # fmt: skip
    Table(
        "chat_messages", metadata,
        Column("id", BigKey, primary_key=True),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id"), nullable=False),
        Column("body", Text), Column("channel", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("chat_customer_id_idx", "customer_id"),
    )  # fmt: skip
    Table(
        "call_records", metadata,
        Column("id", BigKey, primary_key=True),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id"), nullable=False),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("duration_seconds", Integer, nullable=False),
        Column("phone_number", Text), Column("agent_notes", Text),
        Index("calls_customer_id_idx", "customer_id"),
    )  # fmt: skip
    return metadata


# (id, name, email, phone, address, city, postal code, country, born) — the first five are the
# people `dsr_demo_load` files requests for (their addresses at demo.example); the rest are others.
CUSTOMERS = [
    (1, "Ada Lovelace", "ada.lovelace@demo.example", "+1 415 555 0101", "12 Mission Street", "San Francisco",
     "94103", "US", date(1985, 12, 10)),
    (2, "Sven Svensson", "sven.svensson@demo.example", "+46 70 123 45 67", "Drottninggatan 5", "Stockholm",
     "114 55", "SE", date(1979, 6, 6)),
    (3, "Anke de Vries", "anke.de.vries@demo.example", "+31 6 1234 5678", "Damrak 1", "Amsterdam", "1011 AB",
     "NL", date(1990, 4, 27)),
    (4, "Katherine Johnson", "katherine.johnson@demo.example", "+1 757 555 0104", "8 Langley Boulevard",
     "Hampton", "23666", "US", date(1968, 8, 26)),
    (5, "Grace Hopper", "grace.hopper@demo.example", "+1 212 555 0105", "40 Harbor Road", "New York", "10004",
     "US", date(1976, 12, 9)),
    (6, "Alex Example", "alex.example@example.com", "+1 503 555 0106", "3 Pine Street", "Portland", "97201", "US",
     date(1992, 2, 14)),
    (7, "Sam Sample", "sam.sample@example.com", "+44 20 7946 0107", "22 Market Lane", "London", "SW1A 1AA", "GB",
     date(1988, 9, 30)),
]  # fmt: skip

# (id, customer, days ago, status, total cents)
ORDERS = [
    (1, 1, 20, "delivered", 4200), (2, 1, 5, "shipped", 1999),
    (3, 2, 60, "delivered", 8900),
    (4, 3, 90, "delivered", 3500),
    (5, 4, 30, "delivered", 12900), (6, 4, 200, "returned", 2500), (7, 4, 540, "delivered", 7800),
    (8, 5, 15, "placed", 999),
    (9, 6, 10, "delivered", 5600), (10, 7, 400, "delivered", 1500),
]  # fmt: skip

# (id, email, list, days ago, ip address)
NEWSLETTER = [
    (1, "ada.lovelace@demo.example", "weekly", 100, "203.0.113.10"),
    (2, "katherine.johnson@demo.example", "offers", 300, "203.0.113.44"),
    (3, "katherine.johnson@demo.example", "product", 600, "198.51.100.7"),
    (4, "robin.roe@example.com", "weekly", 50, "198.51.100.23"),  # subscribed, never a customer
    (5, "grace.hopper@demo.example", "offers", 25, "203.0.113.55"),
]

# (id, customer, days ago, channel, body)
CHATS = [
    (1, 1, 6, "web", "Hello, my order has not arrived yet. Could you check where it is?"),
    (2, 4, 35, "web", "Please send a copy of the invoice to my colleague robin.roe@example.com as well."),
    (3, 4, 34, "app", "If the parcel comes while I am away, my neighbour can take it: call +1 757 555 0199."),
    (4, 2, 58, "email", "Kan ni skicka kvittot igen? Tack!"),
    (5, 6, 9, "web", "My partner sam.sample@example.com ordered the same thing; can we combine shipping?"),
]

# (id, customer, days ago, seconds, phone, notes)
CALLS = [
    (1, 4, 33, 240, "+1 757 555 0104", "Asked about the return; her husband (+1 757 555 0188) will drop it off."),
    (2, 1, 4, 95, "+1 415 555 0101", "Delivery question, resolved."),
    (3, 3, 85, 310, "+31 6 1234 5678", "Wants her postal address corrected to Damrak 10."),
]


def _rows(now: datetime) -> dict[str, list[dict[str, Any]]]:
    def ago(days: int, hours: int = 10) -> datetime:
        return (now - timedelta(days=days)).replace(hour=hours, minute=0, second=0, microsecond=0)

    customers = [
        {"id": i, "email": email, "name": name, "phone": phone, "address_line": address, "city": city,
         "postal_code": postal, "country": country, "date_of_birth": born, "created_at": ago(700 - i * 20)}
        for i, name, email, phone, address, city, postal, country, born in CUSTOMERS
    ]  # fmt: skip
    by_id = {c["id"]: c for c in customers}
    return {
        "customer": customers,
        "orders": [
            {
                "id": i,
                "customer_id": c,
                "ordered_at": ago(days),
                "status": status,
                "total_cents": cents,
                "shipping_name": by_id[c]["name"],
                "shipping_address": f"{by_id[c]['address_line']}, {by_id[c]['postal_code']} {by_id[c]['city']}",
            }
            for i, c, days, status, cents in ORDERS
        ],  # fmt: skip
        "newsletter_subscriptions": [
            {"id": i, "email": email, "list_name": name, "subscribed_at": ago(days), "ip_address": ip}
            for i, email, name, days, ip in NEWSLETTER
        ],
        "chat_messages": [
            {"id": i, "customer_id": c, "created_at": ago(days, 14), "channel": channel, "body": body}
            for i, c, days, channel, body in CHATS
        ],
        "call_records": [
            {
                "id": i,
                "customer_id": c,
                "started_at": ago(days, 16),
                "duration_seconds": seconds,
                "phone_number": phone,
                "agent_notes": notes,
            }
            for i, c, days, seconds, phone, notes in CALLS
        ],  # fmt: skip
    }


def shop_engine(dsn: str) -> Engine:
    """A writing engine for the shop (the connector's own engine is read-only)."""
    url = make_url(dsn)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def demo_shop_create(engine: Engine, *, schema: str | None = None, now: datetime | None = None) -> dict[str, int]:
    """Create the tables if missing and add the demo rows not yet there (by their fixed ids): a
    second run adds nothing. Returns the rows added per table."""
    metadata = shop_metadata(schema)
    rows = _rows(now or datetime.now(UTC))
    added: dict[str, int] = {}
    with engine.begin() as connection:
        metadata.create_all(connection)
        for name in TABLES:
            table = metadata.tables[f"{schema}.{name}" if schema else name]
            present = set(connection.scalars(select(table.c.id)))
            new = [row for row in rows[name] if row["id"] not in present]
            if new:
                connection.execute(table.insert(), new)
            added[name] = len(new)
    return added
