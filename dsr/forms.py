from django import forms
from django.utils.translation import gettext_lazy as _

from dsr.models import CORRECTION_FIELD_LABELS, AccessPeriod, Regime, Relationship, RequestType
from dsr.validators import single_line

CORRECTION_FIELD_CHOICES = [("", _("Choose…")), *CORRECTION_FIELD_LABELS.items()]
CORRECTION_ROWS = 3


class PublicRequestForm(forms.Form):
    request_type = forms.ChoiceField(
        label=_("What would you like us to do?"), choices=RequestType.choices, widget=forms.RadioSelect
    )
    regime = forms.ChoiceField(label=_("Where do you live?"), choices=Regime.choices, widget=forms.RadioSelect)
    relationship = forms.ChoiceField(
        label=_("How do you know us?"),
        choices=Relationship.choices,
        widget=forms.RadioSelect,
        initial=Relationship.CUSTOMER,
    )
    email = forms.EmailField(
        label=_("Your email address"),
        max_length=254,
        validators=[single_line],
        help_text=_("We answer here. Use the address you use with us."),
    )
    full_name = forms.CharField(label=_("Your full name"), max_length=200, required=False, validators=[single_line])
    access_period = forms.ChoiceField(
        label=_("Which period should we cover?"),
        choices=AccessPeriod.choices,
        widget=forms.RadioSelect,
        initial=AccessPeriod.LAST_12_MONTHS,
        required=False,
        help_text=_("Only for requests to see or copy your data."),
    )
    details = forms.CharField(
        label=_("Anything we should know (optional)"),
        max_length=10000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    evidence = forms.FileField(label=_("Evidence for the correction (optional: PDF, PNG or JPEG)"), required=False)
    is_agent = forms.BooleanField(
        label=_("I am making this request on behalf of someone else (authorised agent)"), required=False
    )
    agent_name = forms.CharField(
        label=_("Your name (the agent)"), max_length=200, required=False, validators=[single_line]
    )
    agent_email = forms.EmailField(
        label=_("Your email address (the agent)"), max_length=254, required=False, validators=[single_line]
    )
    agent_document = forms.FileField(label=_("The consumer's signed permission (PDF, PNG or JPEG)"), required=False)
    agent_power_of_attorney = forms.BooleanField(label=_("I hold a power of attorney for the consumer"), required=False)
    # A field people never see; bots fill it in.
    website = forms.CharField(required=False, label=_("Leave this field empty"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(CORRECTION_ROWS):
            self.fields[f"correction_{i}_field"] = forms.ChoiceField(
                label=_("What is wrong"), choices=CORRECTION_FIELD_CHOICES, required=False
            )
            self.fields[f"correction_{i}_wrong"] = forms.CharField(
                label=_("What we have now"), max_length=500, required=False, validators=[single_line]
            )
            self.fields[f"correction_{i}_correct"] = forms.CharField(
                label=_("What it should be"), max_length=500, required=False, validators=[single_line]
            )

    def _any(self, names) -> bool:
        return any(self[n].errors or self[n].value() for n in names)

    def corrections_open(self) -> bool:
        names = [f"correction_{i}_{k}" for i in range(CORRECTION_ROWS) for k in ("field", "wrong", "correct")]
        return self._any(names + ["evidence"])

    def agent_open(self) -> bool:
        return self._any(["is_agent", "agent_name", "agent_email", "agent_document", "agent_power_of_attorney"])

    def correction_rows(self):
        return [
            (self[f"correction_{i}_field"], self[f"correction_{i}_wrong"], self[f"correction_{i}_correct"])
            for i in range(CORRECTION_ROWS)
        ]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        corrections = []
        for i in range(CORRECTION_ROWS):
            field, wrong, correct = (data.get(f"correction_{i}_{k}", "") for k in ("field", "wrong", "correct"))
            if not (field or wrong or correct):
                continue
            if not field:
                self.add_error(f"correction_{i}_field", _("Choose what is wrong."))
            if not correct:
                self.add_error(f"correction_{i}_correct", _("Say what it should be."))
            corrections.append({"field": field, "wrong": wrong, "correct": correct})
        data["corrections"] = corrections
        if data.get("request_type") == RequestType.RECTIFICATION and not corrections and not data.get("details"):
            self.add_error("correction_0_field", _("Tell us what is wrong and what it should be."))
        if data.get("is_agent"):
            if not data.get("agent_name"):
                self.add_error("agent_name", _("Give your name as the agent."))
            if not data.get("agent_email"):
                self.add_error("agent_email", _("Give your email address as the agent."))
            if not data.get("agent_document") and not data.get("agent_power_of_attorney"):
                self.add_error(
                    "agent_document",
                    _("Attach the consumer's signed permission, or confirm that you hold a power of attorney."),
                )
        return data


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("The 6-digit code from our email"),
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class IdentityForm(forms.Form):
    """Data points matched against what the business holds; none is stored (§7060(d)). Only the
    details that can count for the request are asked for (dsr.identity.CLAIMS_COUNTED), and the
    declaration only where §7062(c) requires it (CCPA, specific pieces)."""

    CLAIMS = ("full_name", "phone", "postal_code", "customer_number")

    full_name = forms.CharField(
        label=_("Your full name as we know it"), max_length=200, required=False, validators=[single_line]
    )
    phone = forms.CharField(
        label=_("A phone number you gave us"), max_length=40, required=False, validators=[single_line]
    )
    postal_code = forms.CharField(label=_("Your postal code"), max_length=20, required=False, validators=[single_line])
    customer_number = forms.CharField(
        label=_("Your customer or account number"), max_length=40, required=False, validators=[single_line]
    )
    declaration_name = forms.CharField(
        label=_("Type your full name to sign"), max_length=200, required=False, validators=[single_line]
    )
    declared = forms.BooleanField(
        label=_("I declare under penalty of perjury that I am the person whose personal information is requested."),
        required=False,
    )

    def __init__(self, *args, claim_fields=None, declaration_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.declaration_required = declaration_required
        self.claim_fields = [f for f in self.CLAIMS if claim_fields is None or f in claim_fields]
        for name in self.CLAIMS:
            if name not in self.claim_fields:
                del self.fields[name]
        if not declaration_required:
            del self.fields["declaration_name"]
            del self.fields["declared"]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        claims = {k: data.get(k, "") for k in self.claim_fields}
        if not any((v or "").strip() for v in claims.values()):
            raise forms.ValidationError(_("Fill in at least one of the details so that we can compare it."))
        if self.declaration_required and data.get("declared") and not (data.get("declaration_name") or "").strip():
            self.add_error("declaration_name", _("Type your name to sign the declaration."))
        data["claims"] = claims
        return data


class ReplyForm(forms.Form):
    message = forms.CharField(
        label=_("Your answer"), max_length=10000, required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    document = forms.FileField(
        label=_("A copy of your ID (PDF, PNG or JPEG); we delete it once we have checked it"), required=False
    )

    def __init__(self, *args, document_requested: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not document_requested:
            del self.fields["document"]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if not (data.get("message") or "").strip() and not data.get("document"):
            self.add_error("message", _("Write your answer."))
        return data


class ReauthForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"), widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
