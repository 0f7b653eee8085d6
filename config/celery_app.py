"""The Celery application. Broker: Redis when REDIS_URL is set, else kombu's filesystem transport
under var/celery/ so `make run` needs no services (see settings.CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dsr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
