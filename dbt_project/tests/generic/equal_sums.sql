{#- Totals must agree between a model and another one: e.g. a district roll-up's event_count summed per month and
    indicator equals the sum over its LSOAs. Returns the groups whose sums differ. Written here: no dbt deps offline. -#}
{% test equal_sums(model, column_name, to, to_column, group_by) %}
{%- set keys = group_by | join(', ') %}
with

a as (
    select {{ keys }}, sum({{ column_name }}) as total from {{ model }} group by {{ keys }}
),

b as (
    select {{ keys }}, sum({{ to_column }}) as total from {{ to }} group by {{ keys }}
)

select
    {% for k in group_by %}coalesce(a.{{ k }}, b.{{ k }}) as {{ k }}, {% endfor %}
    a.total as model_total,
    b.total as other_total
from a
full outer join b on {% for k in group_by %}a.{{ k }} = b.{{ k }}{% if not loop.last %} and {% endif %}{% endfor %}
where coalesce(a.total, 0) <> coalesce(b.total, 0)
{% endtest %}
