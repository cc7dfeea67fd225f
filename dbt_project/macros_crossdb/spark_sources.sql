{#- PLACELINK_ENGINE=spark: every declared source (src.*, ref.*) becomes a view over its month-partitioned Parquet
    folder under PLACELINK_SPARK_WAREHOUSE (orchestration/lib/spark_storage.py writes them), so the models read
    `source(...)` unchanged whichever process started Spark (dbt in process, a dbt subprocess of Dagster, a
    Thrift server). Views over path-based reads: Spark discovers the partition folders itself. On DuckDB it is empty (dbt skips an empty hook),
    where the sources are the warehouse's own tables. Run by on-run-start (dbt_project.yml). -#}
{% macro register_spark_sources() %}
    {%- if target.type == 'spark' and execute -%}
        {%- set root = env_var('PLACELINK_SPARK_WAREHOUSE') -%}
        {%- set schemas = [] -%}
        {%- for node in graph.sources.values() -%}
            {%- if node.schema not in schemas -%}
                {%- do run_query('create database if not exists ' ~ node.schema) -%}
                {%- do schemas.append(node.schema) -%}
            {%- endif -%}
            {%- do run_query('create or replace view ' ~ node.schema ~ '.' ~ node.identifier
                             ~ ' as select * from parquet.`' ~ root ~ '/' ~ node.schema ~ '/' ~ node.identifier ~ '`') -%}
        {%- endfor -%}
        select 1
    {%- endif -%}
{% endmacro %}
