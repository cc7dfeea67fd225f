{#- Rows where an invariant does not hold (dbt_utils.expression_is_true, written here: no dbt deps offline). -#}
{% test expression_is_true(model, expression, column_name=none, where_clause=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}
