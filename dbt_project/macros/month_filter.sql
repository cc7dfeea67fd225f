{#- The month var lets Dagster (or a person) rebuild one month on its own: --vars '{month: 2025-03-01}'.
    Accepts YYYY-MM or YYYY-MM-DD; returns a DATE literal or none. -#}
{% macro month_var() -%}
    {%- set raw = var('month', '') | string | trim -%}
    {%- if raw in ('', 'None', 'none') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if raw | length == 7 -%}{%- set raw = raw ~ '-01' -%}{%- endif -%}
    {#- the full check (real month, digits) is orchestration.lib.dbt_runner.normalise_month; this catches typos -#}
    {%- if execute and (raw | length != 10 or raw[4] != '-' or raw[7:] != '-01') -%}
        {{ exceptions.raise_compiler_error("var month must look like 2025-03 or 2025-03-01, got " ~ raw) }}
    {%- endif -%}
    {{ return(raw) }}
{%- endmacro %}

{% macro month_predicate(column) -%}
    {%- set m = month_var() -%}
    {%- if m is none -%}true{%- else -%}{{ column }} = cast('{{ m }}' as date){%- endif -%}
{%- endmacro %}
