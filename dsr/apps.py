from django.apps import AppConfig


class DsrConfig(AppConfig):
    name = "dsr"
    verbose_name = "Data-subject requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from dsr import checks, receivers  # noqa: F401 - registers the system checks, connects anymail's tracking webhook
