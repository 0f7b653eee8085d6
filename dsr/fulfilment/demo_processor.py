"""The demo processor (run mode only, DSR_DEMO_SYSTEMS): the shipped map's `payments` system, an
http system served by the product itself at /demo/processor/, so `make run` shows an http system
with no set-up. It behaves as a real processor would: it checks the product's signature (and
refuses a replay), answers a person it does not know inline with "nothing held", and for a demo
customer answers 202 and posts their payment records to the signed callback a moment later from
a Celery task — so the request's page shows the system "requested", then done. The records are
made up, the same for the same person every time. Told to erase (`"mode": "instruct"`), it
answers 202 and confirms on the callback a moment later; from then on it holds only the person's
charges, their email replaced (what the shipped map keeps for tax law). Everywhere else the URL is
a 404."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dsr.deadlines import business_today
from dsr.fulfilment.connectors.base import ConnectorError
from dsr.fulfilment.connectors.http import signed_post
from dsr.fulfilment.signing import SignatureInvalid, signature_verify
from dsr.fulfilment.systems_views import problem_response
from dsr.models import DemoCustomer

SECRET_ENV = "DSR_DEMO_PROCESSOR_SECRET"
SCOPE = "demo-processor"
# How long the demo "takes" before it calls back: long enough to see "requested" on the page.
ANSWER_AFTER_SECONDS = 3
CARD_BRANDS = ("Visa", "Mastercard", "American Express")


def demo_payments(email: str, *, due_date: date) -> dict[str, list[dict[str, Any]]]:
    """A demo customer's payment records, derived from their email address alone (the same every
    time). One charge is older than a year, so a CCPA request's 12-month look-back is visible."""
    email = email.strip().lower()
    seed = hashlib.sha256(email.encode()).digest()
    key = seed.hex()[:10]
    last4 = f"{int.from_bytes(seed[:2], 'big') % 10000:04d}"
    charges = [
        {
            "id": f"ch_{key}_{n}",
            "email": email,
            "amount_cents": 500 + seed[n] * 37,
            "charged_at": (due_date - timedelta(days=days)).isoformat() + "T10:15:00+00:00",
        }
        for n, days in enumerate((50, 130, 420), start=1)
    ]
    return {
        "payment_methods": [
            {
                "id": f"pm_{key}",
                "email": email,
                "card_brand": CARD_BRANDS[seed[3] % len(CARD_BRANDS)],
                "card_number": f"4000 0000 0000 {last4}",
                "expires": f"{2027 + seed[4] % 4}-{1 + seed[5] % 12:02d}",
            }
        ],
        "charges": charges,
    }


def _erased_key(email: str) -> str:
    return "demo-processor-erased:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def demo_held(email: str, *, due_date: date) -> dict[str, list[dict[str, Any]]]:
    """What the demo holds now: everything, or after an erasure the charges alone, unlinked."""
    records = demo_payments(email, due_date=due_date)
    if cache.get(_erased_key(email)):
        return {"charges": [{**c, "email": "[erased]"} for c in records["charges"]]}
    return records


def _secret() -> str:
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise Http404("The demo processor has no secret")
    return secret


@csrf_exempt  # the product's own connector posts here, signed, never a browser
@require_POST
def processor(request: HttpRequest) -> HttpResponse:
    if not settings.DSR_DEMO_SYSTEMS:
        raise Http404("No demo systems here")
    body = request.read(settings.DSR_HTTP_MAX_BYTES + 1)
    try:
        signature_verify(
            secret=_secret(), scope=SCOPE, method="POST", path=request.get_full_path(), body=body,
            headers=request.headers,
        )  # fmt: skip
    except SignatureInvalid as refused:
        return problem_response(status=refused.status_code, code=refused.code, detail=str(refused))
    try:
        document = json.loads(body)
        mode = document["mode"]
    except (ValueError, KeyError, TypeError):
        return problem_response(status=400, code="invalid_input", detail="Send a JSON object with 'mode'.")
    if mode == "health":
        return JsonResponse({"ok": True})
    email = str((document.get("identities") or {}).get("email", ""))
    try:
        due_date = date.fromisoformat(document.get("due_date") or "")
    except ValueError:
        due_date = business_today()
    known = bool(email) and DemoCustomer.objects.filter(email__iexact=email).exists()
    if not known:
        return JsonResponse({"nothing_held": True})
    if mode == "instruct":
        return _instructed(document, email, due_date)
    if mode == "find" or not document.get("callback_url") or not document.get("callback_token"):
        return JsonResponse({"records": demo_held(email, due_date=due_date)})
    callback = (document["callback_url"], document["callback_token"], email, due_date.isoformat())
    transaction.on_commit(lambda: demo_processor_answer.apply_async(callback, countdown=ANSWER_AFTER_SECONDS))
    return JsonResponse({"status": "accepted", "answer_within_seconds": ANSWER_AFTER_SECONDS}, status=202)


def _instructed(document: dict, email: str, due_date: date) -> HttpResponse:
    """Told what to do: an erasure is done (held in the cache, so a search afterwards finds only
    what is kept) and confirmed on the callback, or inline when there is none; any other action is
    confirmed inline."""
    if document.get("action") != "erase":
        return JsonResponse({"done": True, "counts": {}})
    before = demo_held(email, due_date=due_date)
    cache.set(_erased_key(email), True, None)
    counts = {"payment_methods": len(before.get("payment_methods", [])), "charges": len(before.get("charges", []))}
    if not document.get("callback_url") or not document.get("callback_token"):
        return JsonResponse({"done": True, "counts": counts})
    confirm = (document["callback_url"], document["callback_token"], counts)
    transaction.on_commit(lambda: demo_processor_confirm.apply_async(confirm, countdown=ANSWER_AFTER_SECONDS))
    return JsonResponse({"status": "accepted", "answer_within_seconds": ANSWER_AFTER_SECONDS}, status=202)


@shared_task(name="dsr.fulfilment.demo_processor.demo_processor_confirm", ignore_result=True)
def demo_processor_confirm(callback_url: str, callback_token: str, counts: dict[str, int]) -> int:
    """Confirm an erasure on the product's callback, signed; returns its status."""
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        return 0
    try:
        answer = signed_post(
            urlsplit(callback_url), secret=secret, payload={"done": True, "counts": counts}, timeout=10,
            name="demo processor callback", headers={"Authorization": f"Bearer {callback_token}"},
        )  # fmt: skip
    except ConnectorError:
        return 0
    return answer.status


# The demo stands in for another company's system with its own queue, so this task is handed what
# that system would keep (where to answer, and the token to answer with), not the product's ids.
@shared_task(name="dsr.fulfilment.demo_processor.demo_processor_answer", ignore_result=True)
def demo_processor_answer(callback_url: str, callback_token: str, email: str, due_date: str) -> int:
    """Post the demo customer's records to the product's callback, signed; returns its status."""
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        return 0
    payload = {"records": demo_held(email, due_date=date.fromisoformat(due_date))}
    try:
        answer = signed_post(
            urlsplit(callback_url), secret=secret, payload=payload, timeout=10, name="demo processor callback",
            headers={"Authorization": f"Bearer {callback_token}"},
        )  # fmt: skip
    except ConnectorError:
        return 0  # the product is away: a real processor would try again later
    return answer.status
