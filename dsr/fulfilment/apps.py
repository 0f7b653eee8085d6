from django.apps import AppConfig


class FulfilmentConfig(AppConfig):
    name = "dsr.fulfilment"
    label = "fulfilment"
    verbose_name = "Fulfilment"
    default_auto_field = "django.db.models.BigAutoField"
