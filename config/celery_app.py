"""The Celery application. Broker: Redis when REDIS_URL is set, else kombu's filesystem transport
under var/celery/ so `make run` needs no services (see config/settings/base.py, CELERY_*)."""

import os

from celery import Celery

# A worker or beat is a deployment: production unless told otherwise (make run sets config.settings.run).
# This module is imported with the config package, so its default is also config/wsgi.py's.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("dsr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
