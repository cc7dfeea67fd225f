-- Postgres set-up for the production profile: one database per service, each owned by its own role.
-- Run once as a superuser (docker-compose mounts this into /docker-entrypoint-initdb.d/; on a managed
-- Postgres run it with psql). Set real passwords with ALTER ROLE ... PASSWORD afterwards: never commit them.
CREATE ROLE dagster LOGIN;
CREATE ROLE mlflow LOGIN;
CREATE DATABASE dagster OWNER dagster;   -- Dagster run, event-log and schedule storage
CREATE DATABASE mlflow OWNER mlflow;     -- MLflow tracking backend store (runs, model registry)
