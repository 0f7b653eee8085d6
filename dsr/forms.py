from django import forms
from django.utils.translation import gettext_lazy as _

from dsr.models import Regime, RequestType


class PublicRequestForm(forms.Form):
    request_type = forms.ChoiceField(label=_("What would you like us to do?"), choices=RequestType.choices, widget=forms.RadioSelect)
    regime = forms.ChoiceField(label=_("Where do you live?"), choices=Regime.choices, widget=forms.RadioSelect)
    email = forms.EmailField(label=_("Your email address"), max_length=254, help_text=_("We answer here. Use the address you use with us."))
    full_name = forms.CharField(label=_("Your full name"), max_length=200, required=False)
    details = forms.CharField(label=_("Anything we should know (optional)"), max_length=10000, required=False, widget=forms.Textarea(attrs={"rows": 4}))
