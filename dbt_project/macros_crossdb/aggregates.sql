{#- Aggregates DuckDB and Spark spell differently, behind adapter.dispatch so the models are written once
    (PLACELINK_ENGINE=spark builds the same models on dbt-spark; docs/scaling.md). dbt's own cross-database
    macros (dbt.dateadd, dbt.datediff, dbt.date_trunc, dbt.type_string ...) cover the rest. -#}

{#- The value of `value` on the row with the largest `by`, skipping rows where either is null (DuckDB's arg_max
    skips both; Spark's max_by skips only a null `by`, so the null values are turned into null keys). Ties on `by`
    go to the largest value: both engines otherwise break them arbitrarily, and differently (a person whose two
    latest events share a date got one LSOA on DuckDB and another on Spark). -#}
{% macro arg_max(value, by) -%}
    {{ return(adapter.dispatch('arg_max', 'placelink')(value, by)) }}
{%- endmacro %}

{% macro default__arg_max(value, by) -%}
    arg_max({{ value }}, case when {{ by }} is not null then row({{ by }}, {{ value }}) end)
{%- endmacro %}

{% macro spark__arg_max(value, by) -%}
    max_by({{ value }}, case when {{ value }} is not null and {{ by }} is not null then struct({{ by }}, {{ value }}) end)
{%- endmacro %}

{#- The distinct-free list of `measure` values, sorted, joined with `separator` (dbt.listagg cannot order on Spark). -#}
{% macro sorted_listagg(measure, separator) -%}
    {{ return(adapter.dispatch('sorted_listagg', 'placelink')(measure, separator)) }}
{%- endmacro %}

{% macro default__sorted_listagg(measure, separator) -%}
    string_agg({{ measure }}, '{{ separator }}' order by {{ measure }})
{%- endmacro %}

{% macro spark__sorted_listagg(measure, separator) -%}
    array_join(array_sort(collect_list({{ measure }})), '{{ separator }}')
{%- endmacro %}

{#- The text type: varchar on DuckDB, string on Spark (Spark has no bare varchar). dbt's own cross-database macro,
    wrapped so sqlfluff's templater (lint/crossdb_stubs.sql) can render the models. -#}
{% macro text_type() -%}
    {{ dbt.type_string() }}
{%- endmacro %}

{#- Incremental models rebuild whole months: DuckDB deletes the months in the new rows and inserts them
    (delete+insert on unique_key); Spark overwrites those months' partitions (insert_overwrite, dynamic partition
    overwrite), so the table is partitioned by the month there. Used in the models' config(). -#}
{% macro replace_months_strategy() -%}
    {{ return(adapter.dispatch('replace_months_strategy', 'placelink')()) }}
{%- endmacro %}

{% macro default__replace_months_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__replace_months_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}

{% macro month_partitions(column) -%}
    {{ return([column] if target.type == 'spark' else none) }}
{%- endmacro %}
