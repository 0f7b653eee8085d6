"""Staff sign-in: password (throttled), then a TOTP second factor — set up on first sign-in,
required where DSR_REQUIRE_2FA is on (the default outside run mode)."""

import base64
from io import BytesIO

from django import forms
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsr.ratelimit import client_ip, rate_limit_hit


class ThrottledLoginView(auth_views.LoginView):
    """Django's login, refusing further tries for a while after too many from one address or for
    one username."""

    def post(self, request, *args, **kwargs):
        wait = rate_limit_hit(scope="login_ip", key=client_ip(request)) or rate_limit_hit(
            scope="login_user", key=request.POST.get("username", "")
        )
        if wait:
            response = render(request, "registration/too_many.html", {"minutes": max(1, round(wait / 60))}, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)


class TokenForm(forms.Form):
    token = forms.CharField(label="6-digit code from your authenticator app", max_length=8,
                            widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}))


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/dashboard/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
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
        wait = rate_limit_hit(scope="login_user", key=f"otp:{request.user.pk}")
        if wait:
            response = render(request, "registration/too_many.html", {"minutes": max(1, round(wait / 60))}, status=429)
            response["Retry-After"] = str(wait)
            return response
        if form.is_valid() and device.verify_token(form.cleaned_data["token"].replace(" ", "")):
            if setting_up:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", "That code is not right (or has expired). Try the current one.")
    context = {"form": form, "setting_up": setting_up, "next": _next(request)}
    if setting_up:
        context["secret"] = base64.b32encode(device.bin_key).decode()
        context["qr_svg"] = _qr_svg(device.config_url)
    return render(request, "registration/otp.html", context, status=400 if form.errors else 200)
