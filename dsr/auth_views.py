"""Staff sign-in: password (throttled), then a TOTP second factor — set up on first sign-in,
required where DSR_REQUIRE_2FA is on (the default outside run mode)."""

import base64
import hashlib
import hmac
import unicodedata
from io import BytesIO
from urllib.parse import quote

from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsr.ratelimit import client_ip, rate_limit_count, rate_limit_hit, rate_limit_reached

# Sign-in limits count failures, never successes, so that nobody can lock an officer out from
# elsewhere:
# - a client over its failures (login_ip), or over its failures for one username (login_user_ip), is
#   refused without its password being checked;
# - failures per username (login_user) are a ceiling that never refuses by itself. Above it (a
#   distributed guesser), a client that has not signed in as that user before gets one failure per
#   window for that username instead of login_user_ip's allowance: that slows the guesser to one try
#   per address, while the owner — from a browser that signed in before, or from any client that has
#   not been failing — still gets in with the right password.
KNOWN_SIGNIN_COOKIE = "dsr_signin"
KNOWN_SIGNIN_SALT = "dsr.auth_views.known-signin"
KNOWN_SIGNIN_SECONDS = 30 * 86400


def _username(raw: str) -> str:
    # Cleaned as AuthenticationForm cleans it, so " olivia" and "olivia" are the same guesses.
    return unicodedata.normalize("NFKC", raw or "").strip()


def _account_tag(username: str) -> str:
    return hashlib.sha256(username.lower().encode()).hexdigest()[:32]


def _signed_in_here_before(request, username: str) -> bool:
    value = request.get_signed_cookie(
        KNOWN_SIGNIN_COOKIE, default="", salt=KNOWN_SIGNIN_SALT, max_age=KNOWN_SIGNIN_SECONDS
    )
    return bool(username) and hmac.compare_digest(value, _account_tag(username))


def _too_many(request, wait: int):
    response = render(request, "registration/too_many.html", {"minutes": max(1, round(wait / 60))}, status=429)
    response["Retry-After"] = str(wait)
    return response


def password_signin_wait(request, username: str) -> int | None:
    """Seconds this client must wait before its password for `username` is checked, or None."""
    client = client_ip(request)
    pair = f"{username}|{client}"
    wait = rate_limit_reached(scope="login_ip", key=client) or rate_limit_reached(scope="login_user_ip", key=pair)
    if (
        wait is None
        and rate_limit_reached(scope="login_user", key=username)
        and not _signed_in_here_before(request, username)
    ):
        wait = rate_limit_reached(scope="login_user_ip", key=pair, limit=1)
    return wait


def password_signin_failed(request, username: str) -> None:
    client = client_ip(request)
    rate_limit_count(scope="login_ip", key=client)
    rate_limit_count(scope="login_user_ip", key=f"{username}|{client}")
    rate_limit_count(scope="login_user", key=username)


class ThrottledLoginView(auth_views.LoginView):
    """Django's login, refusing a client for a while after too many failures (see above)."""

    def post(self, request, *args, **kwargs):
        wait = password_signin_wait(request, _username(request.POST.get("username", "")))
        if wait:
            return _too_many(request, wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        password_signin_failed(self.request, _username(self.request.POST.get("username", "")))
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        response.set_signed_cookie(
            KNOWN_SIGNIN_COOKIE,
            _account_tag(form.get_user().get_username()),
            salt=KNOWN_SIGNIN_SALT,
            max_age=KNOWN_SIGNIN_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
        return response


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, sending a limited number of emails per client and per address."""

    def post(self, request, *args, **kwargs):
        wait = rate_limit_hit(scope="password_reset_ip", key=client_ip(request))
        if wait:
            return _too_many(request, wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        if rate_limit_hit(scope="password_reset_email", key=form.cleaned_data["email"].strip()):
            # Over the per-address limit: the answer every address gets (it never tells whether the
            # address is known), and no email.
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class TokenForm(forms.Form):
    token = forms.CharField(
        label="6-digit code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}),
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/dashboard/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return "/dashboard/"
    return target


def _qr_svg(uri: str) -> str:
    import qrcode
    import qrcode.image.svg

    buffer = BytesIO()
    qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8).save(buffer)
    return buffer.getvalue().decode()


def otp_verify(request):
    """Second factor: enter the current code; on first sign-in, set up the authenticator first."""
    if not request.user.is_authenticated:
        return redirect(f"/accounts/login/?next={_next(request)}")
    if request.user.is_verified():
        return redirect(_next(request))
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    setting_up = device is None
    if setting_up:
        device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first() or TOTPDevice.objects.create(
            user=request.user, name="authenticator", confirmed=False
        )
    form = TokenForm(request.POST if request.method == "POST" else None)  # an empty POST is bound too
    if request.method == "POST":
        # Failures per (user, client) and per client, as for the password; django-otp's own growing
        # delay per device stays on behind them (only someone who has the password reaches this step).
        client = client_ip(request)
        pair = f"{request.user.pk}|{client}"
        wait = rate_limit_reached(scope="login_ip", key=client) or rate_limit_reached(scope="otp_user_ip", key=pair)
        if wait:
            return _too_many(request, wait)
        if form.is_valid() and device.verify_token(form.cleaned_data["token"].replace(" ", "")):
            if setting_up:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return redirect(_next(request))
        rate_limit_count(scope="login_ip", key=client)
        rate_limit_count(scope="otp_user_ip", key=pair)
        form.add_error("token", "That code is not right (or has expired). Try the current one.")
    context = {"form": form, "setting_up": setting_up, "next": _next(request)}
    if setting_up:
        context["secret"] = base64.b32encode(device.bin_key).decode()
        context["qr_svg"] = _qr_svg(device.config_url)
    return render(request, "registration/otp.html", context, status=400 if form.errors else 200)


def admin_login(request):
    """The admin signs in through the same throttled sign-in and second factor as the dashboard
    (its own login form would be a door without limits)."""
    target = request.GET.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/admin/"
    if request.user.is_authenticated and settings.DSR_REQUIRE_2FA and not request.user.is_verified():
        return redirect(f"/accounts/otp/?next={quote(target)}")
    return redirect(f"/accounts/login/?next={quote(target)}")
