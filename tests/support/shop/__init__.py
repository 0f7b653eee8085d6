"""A test-only app (INSTALLED_APPS in config/settings/test.py only): a business's own models that a
`django` system of the data map searches (tests/fulfilment/test_django_connector.py)."""
