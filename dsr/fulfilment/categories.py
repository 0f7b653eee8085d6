"""The vocabularies a data map is written in: the CCPA categories of personal information
(§1798.140(v)(1)(A)–(L)), identity kinds, connector kinds and erasure strategies. Pure data: the
map's validation, the reports and the access package all read the same names."""

from django.utils.translation import gettext_lazy as _

# §1798.140(v)(1): the categories a business lists in its notice and in its answer to a request to
# know (§1798.110(c)); the policies list theirs the same way ("Identifiers such as name…").
CCPA_CATEGORIES: dict[str, object] = {
    "identifiers": _("Identifiers (name, email address, postal address, account name, IP address)"),
    "customer_records": _("Personal information in customer records (Cal. Civ. Code §1798.80(e))"),
    "protected_classifications": _("Characteristics of protected classifications"),
    "commercial_information": _("Commercial information (purchases, products and services considered)"),
    "biometric_information": _("Biometric information"),
    "internet_activity": _("Internet or other electronic network activity"),
    "geolocation_data": _("Geolocation data"),
    "sensory_data": _("Audio, electronic, visual or similar information"),
    "professional_information": _("Professional or employment-related information"),
    "education_information": _("Education information"),
    "inferences": _("Inferences drawn to create a profile"),
    "sensitive_personal_information": _("Sensitive personal information (§1798.140(ae))"),
}

# How a requester is found in a system. The request supplies `email` (the address the request was
# made from, [policy]: "only the PI associated with the email address used"); the others are found
# by following references from a collection found by email, or supplied by a verified match.
IDENTITY_KINDS = ("email", "phone", "customer_number", "account_id")

CONNECTOR_KINDS = ("sql", "django", "http", "manual")

# Part 2 (erasure) reads these; part 1 validates them so a map written now stays valid.
ERASURE_STRATEGIES = ("delete", "null", "fixed", "random", "hash", "keep")

# What a collection's `flags` may mark on a person's rows (issue 11): restriction (Art 18), opt-out
# of sale/sharing (§1798.120) and limit of sensitive data (§1798.121), each the name of a field.
FLAG_ACTIONS = ("restrict", "opt_out_sale", "limit_sensitive")


def category_label(slug: str) -> str:
    return str(CCPA_CATEGORIES.get(slug, slug))
