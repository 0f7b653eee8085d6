"""Fulfilment's one requester form: the statement a CCPA requester may send about a correction
that was rejected (§7023(f)). The word limit is the service's (it says how many words were sent)."""

from django import forms
from django.utils.translation import gettext_lazy as _


class StatementForm(forms.Form):
    statement = forms.CharField(
        label=_("Your statement (at most 250 words)"),
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=5000,
        strip=True,
    )
