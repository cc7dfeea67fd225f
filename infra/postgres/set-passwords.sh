#!/bin/sh
# Give the roles created by init.sql their passwords from the environment (never stored in git).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
ALTER ROLE dagster PASSWORD '${DAGSTER_PG_PASSWORD}';
ALTER ROLE mlflow PASSWORD '${MLFLOW_DB_PASSWORD}';
SQL
