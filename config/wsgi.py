import os

from django.core.wsgi import get_wsgi_application

# A WSGI server is a deployment: production unless told otherwise (make run sets config.settings.run).
# config/celery_app.py, imported first with the config package, sets the same default.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
