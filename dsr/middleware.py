"""Responses that show personal data are never stored by a browser or a proxy cache."""

from django.utils.cache import add_never_cache_headers

# Every URL under these prefixes shows or returns personal data: the dashboard and its CSV exports,
# the requester's status page and email confirmation, the older staff pages and their document
# downloads, the whole API (staff responses, the public intake's answer), sign-in and its second
# factor (the TOTP secret), the admin, unsubscribing. And two pages: the public form, which shows
# back what was typed when it has errors, and the confirmation with the request's deadline.
# tests/security/test_no_store.py walks every URL pattern: each is covered here or named there as public.
NO_STORE_PREFIXES = (
    "/dashboard/", "/r/", "/v/", "/staff/", "/api/v1/", "/accounts/", "/admin/", "/unsubscribe/",
    # Fulfilment: systems' callbacks, owners' task pages; the demo processor's payment records.
    "/fulfilment/", "/demo/",
)  # fmt: skip
NO_STORE_PATHS = ("/", "/submitted/")


def shows_personal_data(path: str) -> bool:
    return path in NO_STORE_PATHS or path.startswith(NO_STORE_PREFIXES)


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if shows_personal_data(request.path_info):
            # Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private
            add_never_cache_headers(response)
        return response
