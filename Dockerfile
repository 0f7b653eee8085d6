# One image for web (gunicorn), worker and beat, on the production settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DSR_VAR_DIR=/app/var DJANGO_SETTINGS_MODULE=config.settings.production
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 dsr
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=dsr:dsr . .
# Static files and the compiled translations (*.mo are not in git: without them the pages and
# emails would be English only); the keys are placeholders for the build, the real ones come at run time.
RUN mkdir -p /app/var /srv/audit-checkpoints && chown dsr:dsr /app/var /srv/audit-checkpoints \
    && DJANGO_SECRET_KEY=build-only DSR_AUDIT_KEY=build-only DSR_PACKAGE_KEY=build-only DSR_SUPPRESSION_KEY=build-only DSR_LEDGER_KEY=build-only DSR_ERASURE_HASH_KEY=build-only python manage.py collectstatic --noinput --verbosity 0 \
    && DJANGO_SECRET_KEY=build-only DSR_AUDIT_KEY=build-only DSR_PACKAGE_KEY=build-only DSR_SUPPRESSION_KEY=build-only DSR_LEDGER_KEY=build-only DSR_ERASURE_HASH_KEY=build-only python manage.py dsr_compile_messages
USER dsr
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
