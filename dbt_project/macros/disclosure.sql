{#- Primary statistical disclosure control, in SQL so dbt unit_tests pin it down (see
    models/intermediate/_intermediate__models.yml). Secondary suppression needs the margin equations of a whole
    table, so it lives in orchestration/lib/disclosure.py and runs in the Python model published.place_monthly_indicators. -#}

{% macro is_primary_suppressed(count_column, threshold=none) -%}
    {%- set t = threshold if threshold is not none else var('disclosure_threshold') -%}
    ({{ count_column }} between 1 and {{ t }} - 1)
{%- endmacro %}

{% macro suppress_count(count_column, threshold=none) -%}
    case when {{ is_primary_suppressed(count_column, threshold) }} then null else {{ count_column }} end
{%- endmacro %}

{% macro rate_per_1000(count_column, population_column) -%}
    case
        when {{ population_column }} > 0
            then round(1000.0 * {{ count_column }} / {{ population_column }}, 3)
    end
{%- endmacro %}
