from django.core.management.base import BaseCommand

from dsr.email_catalogue import CATALOGUE, sample_context
from dsr.services.emails import email_render


class Command(BaseCommand):
    help = "Print docs/emails.md: every email the product sends, with an example."

    def handle(self, *args, **options):
        out = [
            "# Emails",
            "",
            "Every email the product sends, when, and an example (English; requester emails also go out in",
            "Swedish and Dutch, in the request's language). Each has a text and an HTML part; the HTML part is",
            "the text in the house layout. Regenerate with `python manage.py dsr_email_catalogue > docs/emails.md`.",
            "",
            "What a person typed never becomes markup or a link: the HTML part escapes every value and links",
            "only the product's own URLs (status page, confirmation link, dashboard, request form). Emails to",
            "the requester and to the team repeat nothing the requester typed (not even the name: most go to",
            "an address nobody has confirmed yet); the dashboard shows it, escaped. The one exception is the",
            "forward to an organisation's administrator, which names the address the request came from.",
            "",
            "| template | to | when |",
            "|---|---|---|",
        ]
        out += [f"| `{k.template}` | {k.audience} | {k.when} |" for k in CATALOGUE]
        for kind in CATALOGUE:
            rendered = email_render(template=kind.template, language="en", context=sample_context(kind))
            out += [
                "",
                f"## `{kind.template}`",
                "",
                f"To: {kind.audience}. {kind.when}",
                "",
                f"**Subject:** {rendered.subject}",
                "",
                "```text",
                rendered.text.strip(),
                "```",
            ]
        self.stdout.write("\n".join(out) + "\n")
