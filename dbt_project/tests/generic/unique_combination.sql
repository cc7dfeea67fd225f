{#- Written here because dbt_utils (unique_combination_of_columns) cannot be installed: dbt deps has no network. -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
