{#- Schemas are the zone names (staging, intermediate, marts, published), not <target>_<schema>, so the Dagster
    asset keys <schema>/<model> and analysts' queries read the same everywhere. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
