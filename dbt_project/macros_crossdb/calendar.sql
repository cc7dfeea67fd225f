{#- Month arithmetic through dbt's cross-database macros (DESIGN "Scale": engine-specific SQL in one seam).
    Wrapped here so models stay plain SQL for sqlfluff, which does not know the `dbt` namespace. -#}

{% macro add_months(months, date_expr) -%}
    {{ dbt.dateadd('month', months, date_expr) }}
{%- endmacro %}

{% macro months_between(start_expr, end_expr) -%}
    {{ dbt.datediff(start_expr, end_expr, 'month') }}
{%- endmacro %}

{% macro year_start(date_expr) -%}
    {{ dbt.date_trunc('year', date_expr) }}
{%- endmacro %}
