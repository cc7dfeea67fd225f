{#- The platform period's first or last month from the environment dbt runs in (see macros/period.sql). Here, beside
    the cross-database wrappers, because sqlfluff's jinja templater knows no env_var: lint/crossdb_stubs.sql stands
    in for it when linting. -#}
{% macro period_bound(name) -%}
    {%- set value = env_var('PLACELINK_PERIOD_' ~ name | upper, '') | trim -%}
    {%- if execute and (value | length != 10 or value[4] != '-' or value[7:] != '-01') -%}
        {{ exceptions.raise_compiler_error(
            "PLACELINK_PERIOD_" ~ name | upper ~ " must be a first of month (YYYY-MM-01), got '" ~ value
            ~ "': run dbt through placelink (orchestration.lib.dbt_runner sets it from config.PARTITION_START)") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
