{#- sqlfluff only: DuckDB renderings of macros_crossdb/*.sql, whose dbt.* cross-database calls the jinja
    templater cannot resolve. dbt itself never reads this folder. -#}
{% macro add_months(months, date_expr) -%}({{ date_expr }} + to_months({{ months }})){%- endmacro %}
{% macro months_between(start_expr, end_expr) -%}date_diff('month', {{ start_expr }}, {{ end_expr }}){%- endmacro %}
{% macro year_start(date_expr) -%}date_trunc('year', {{ date_expr }}){%- endmacro %}
{#- macros/period.sql reads the platform's period from the environment (dbt's env_var, unknown to the templater) -#}
{% macro period_bound(name) -%}{{ '2024-01-01' if name == 'start' else '2026-12-01' }}{%- endmacro %}
