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
            "| template | to | when |",
            "|---|---|---|",
        ]
        out += [f"| `{k.template}` | {k.audience} | {k.when} |" for k in CATALOGUE]
        for kind in CATALOGUE:
            rendered = email_render(template=kind.template, language="en", context=sample_context(kind))
            out += ["", f"## `{kind.template}`", "", f"To: {kind.audience}. {kind.when}", "", f"**Subject:** {rendered.subject}",
                    "", "```text", rendered.text.strip(), "```"]
        self.stdout.write("\n".join(out) + "\n")
