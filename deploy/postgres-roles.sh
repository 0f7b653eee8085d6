#!/bin/sh
# Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d). Two roles:
# dsr owns the database and its tables and runs the migrations; dsr_app, which the web server, the
# worker and beat connect as, owns nothing and gets its table privileges from
# `manage.py dsr_db_grant dsr_app` after each migrate. Neither is a superuser.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$DSR_DB_OWNER_PASSWORD" -v app_password="$DSR_DB_APP_PASSWORD" <<'SQL'
CREATE ROLE dsr LOGIN PASSWORD :'owner_password';
CREATE ROLE dsr_app LOGIN PASSWORD :'app_password';
ALTER DATABASE dsr OWNER TO dsr;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname dsr -c "ALTER SCHEMA public OWNER TO dsr"
