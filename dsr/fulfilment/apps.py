from django.apps import AppConfig


class FulfilmentConfig(AppConfig):
    name = "dsr.fulfilment"
    label = "fulfilment"
    verbose_name = "Fulfilment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Once the registry is ready (they use the models): the connectors register by kind, the
        # tasks by name, the system checks (the data map guard) with Django, and fulfilment's
        # functions with the request core's hooks (the core never imports fulfilment).
        from dsr import hooks
        from dsr.fulfilment import checks, connectors, tasks, wiring  # noqa: F401

        for name, function in wiring.HOOKS.items():
            hooks.hook_register(name, function)
