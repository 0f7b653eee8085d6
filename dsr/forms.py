from django import forms
from django.utils.translation import gettext_lazy as _

from dsr.models import Regime, RequestType


class PublicRequestForm(forms.Form):
    request_type = forms.ChoiceField(label=_("What would you like us to do?"), choices=RequestType.choices, widget=forms.RadioSelect)
    regime = forms.ChoiceField(label=_("Where do you live?"), choices=Regime.choices, widget=forms.RadioSelect)
    email = forms.EmailField(label=_("Your email address"), max_length=254, help_text=_("We answer here. Use the address you use with us."))
    full_name = forms.CharField(label=_("Your full name"), max_length=200, required=False)
    details = forms.CharField(label=_("Anything we should know (optional)"), max_length=10000, required=False, widget=forms.Textarea(attrs={"rows": 4}))


class CodeForm(forms.Form):
    code = forms.CharField(label=_("The 6-digit code from our email"), max_length=12,
                           widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}))


class IdentityForm(forms.Form):
    """Data points matched against what the business holds; none is stored (§7060(d))."""

    full_name = forms.CharField(label=_("Your full name as we know it"), max_length=200, required=False)
    phone = forms.CharField(label=_("A phone number you gave us"), max_length=40, required=False)
    postal_code = forms.CharField(label=_("Your postal code"), max_length=20, required=False)
    customer_number = forms.CharField(label=_("Your customer or account number"), max_length=40, required=False)
    declaration_name = forms.CharField(label=_("Type your full name to sign"), max_length=200, required=False)
    declared = forms.BooleanField(
        label=_("I declare under penalty of perjury that I am the person whose personal information is requested."),
        required=False,
    )

    def __init__(self, *args, declaration_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.declaration_required = declaration_required
        if not declaration_required:
            del self.fields["declaration_name"]
            del self.fields["declared"]

    def clean(self):
        data = super().clean()
        claims = {k: data.get(k, "") for k in ("full_name", "phone", "postal_code", "customer_number")}
        if not any((v or "").strip() for v in claims.values()):
            raise forms.ValidationError(_("Fill in at least one of the details so that we can compare it."))
        if self.declaration_required and data.get("declared") and not (data.get("declaration_name") or "").strip():
            self.add_error("declaration_name", _("Type your name to sign the declaration."))
        data["claims"] = claims
        return data


class ReplyForm(forms.Form):
    message = forms.CharField(label=_("Your answer"), max_length=10000, widget=forms.Textarea(attrs={"rows": 5}))
