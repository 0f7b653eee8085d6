from django.apps import AppConfig


class DsrConfig(AppConfig):
    name = "dsr"
    verbose_name = "Data-subject requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported once the app registry is ready (they use the models): the system checks register,
        # anymail's tracking webhook connects, and the tasks register by name, for the outbox to
        # publish email_send without importing the tasks module.
        from dsr import checks, receivers, tasks  # noqa: F401
