from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dsr import selectors
from dsr.errors import InvalidInput
from dsr.models import ApiToken
from dsr.services.tokens import MAX_DAYS, api_token_create, api_token_revoke, api_tokens_revoke_all

NOT_FOUND = 1  # unknown user or token
BAD_INPUT = 2  # a name or lifetime that is refused (argparse also exits 2 on a malformed command line)


class Command(BaseCommand):
    help = (
        "Create, list and revoke a staff user's API tokens. `create` prints the key as the last line (shown "
        f"only then). Exit codes: 0 done, {NOT_FOUND} unknown user or token, {BAD_INPUT} bad input."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a token and print its key.")
        create.add_argument("username")
        create.add_argument("--name", required=True, help="What or who will use it (shown in lists).")
        create.add_argument("--days", help=f"Lifetime in days, 1 to {MAX_DAYS} (default: DSR_API_TOKEN_DAYS).")
        listing = actions.add_parser("list", help="List the user's tokens (never their keys).")
        listing.add_argument("username")
        revoke = actions.add_parser("revoke", help="Revoke one token by its id, or all of the user's tokens.")
        revoke.add_argument("username")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("token_id", nargs="?", help="The token's id, as `list` shows it.")
        which.add_argument("--all", action="store_true", help="Revoke every token the user holds.")

    def handle(self, *args, action, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user '{username}'.", returncode=NOT_FOUND)
        if action == "create":
            try:
                token, key = api_token_create(user=user, name=options["name"], days=options["days"])
            except InvalidInput as exc:
                raise CommandError(exc.message, returncode=BAD_INPUT) from None
            self.stdout.write(
                f"Created token {token.token_key} '{token.name}' for {username}, "
                f"expires {token.expiry:%Y-%m-%d %H:%M %Z}."
            )
            self.stdout.write("The key is on the next line; it is shown only now.")
            self.stdout.write(key)
        elif action == "list":
            tokens, now = list(selectors.api_tokens_of(user=user)), timezone.now()
            if not tokens:
                self.stdout.write(f"{username} holds no API tokens.")
            else:
                self.stdout.write("id\tname\tcreated\texpires\tlast used\tstate")
            for t in tokens:
                used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                state = "EXPIRED" if t.expiry <= now else "live"
                self.stdout.write(
                    f"{t.token_key}\t{t.name}\t{t.created:%Y-%m-%d}\t{t.expiry:%Y-%m-%d}\t{used}\t{state}"
                )
        elif options["all"]:
            count = api_tokens_revoke_all(user=user)
            self.stdout.write(f"Revoked {count} token(s) of {username}.")
        else:
            try:
                token = api_token_revoke(user=user, token_id=options["token_id"])
            except ApiToken.DoesNotExist:
                raise CommandError(
                    f"{username} holds no token '{options['token_id']}' (see `list`).", returncode=NOT_FOUND
                ) from None
            self.stdout.write(f"Revoked token {token.token_key} '{token.name}' of {username}.")
