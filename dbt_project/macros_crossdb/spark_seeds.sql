{#- PLACELINK_ENGINE=spark: dbt-spark's session method writes a seed's values into its INSERT between plain quotes
    (its cursor formats them into the SQL), so a label with an apostrophe ("Children's social care") broke the
    seed, and a backslash would have been read as an escape. The same INSERT as dbt-spark's own
    spark__load_csv_rows, with every value written as an escaped Spark literal instead of a binding. Spark only: the
    DuckDB adapter's loader is untouched. -#}
{% macro spark__load_csv_rows(model, agate_table) %}
  {%- set batch_size = get_batch_size() -%}
  {%- set column_override = model['config'].get('column_types', {}) -%}
  {%- set statements = [] -%}
  {%- for chunk in agate_table.rows | batch(batch_size) -%}
      {%- set sql -%}
          insert into {{ this.render() }} values
          {% for row in chunk -%}
              ({%- for col_name in agate_table.column_names -%}
                  {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                  {%- set type = column_override.get(col_name, inferred_type) -%}
                  cast({{ spark_literal(row[loop.index0]) }} as {{ type }})
                  {%- if not loop.last %}, {% endif -%}
              {%- endfor -%})
              {%- if not loop.last %},{% endif %}
          {% endfor -%}
      {%- endset -%}
      {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
      {%- if loop.index0 == 0 -%}{%- do statements.append(sql) -%}{%- endif -%}
  {%- endfor -%}
  {{ return(statements[0]) }}
{% endmacro %}

{#- One CSV value as a Spark SQL literal: null, a number or boolean as itself, anything else a quoted string with
    backslashes and quotes escaped (Spark string literals read backslash escapes). -#}
{% macro spark_literal(value) -%}
  {%- if value is none -%}null
  {%- elif value is sameas true or value is sameas false -%}{{ value | string | lower }}
  {%- elif value is number -%}{{ value }}
  {%- else -%}'{{ (value | string).replace('\\', '\\\\').replace("'", "\\'") }}'
  {%- endif -%}
{%- endmacro %}
