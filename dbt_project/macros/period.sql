{#- The platform's period: PARTITION_START to the current month (orchestration.lib.config.platform_period), set by
    orchestration/lib/dbt_runner.py as PLACELINK_PERIOD_START / PLACELINK_PERIOD_END. The calendar and every mart lie
    inside it; an event dated outside it (a 1900 typo, a 2031 clock) is excluded and counted by the warn test
    within_period on each staging model, never a reason to stretch the calendar (issue #22). The environment is read
    by period_bound (macros_crossdb/period_bound.sql). -#}
{% macro period_start() -%}
    cast('{{ period_bound("start") }}' as date)
{%- endmacro %}

{% macro period_end() -%}
    cast('{{ period_bound("end") }}' as date)
{%- endmacro %}

{% macro in_period(month_expr) -%}
    ({{ month_expr }} between {{ period_start() }} and {{ period_end() }})
{%- endmacro %}
