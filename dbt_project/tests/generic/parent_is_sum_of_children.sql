{#- The indicator hierarchy (seed `indicators`, column `parent`) holds in the data: at every area and month a parent
    indicator's count equals the sum of its children's (crimes_total = the crime types). Disclosure control
    (orchestration/lib/disclosure.py) protects each parent jointly with its children on exactly this relation, so
    a seed that claims a sum the marts do not obey, or a new crime group left out of the seed, fails here.
    Returns the (area, month, parent) whose count differs from its children's sum. -#}
{% test parent_is_sum_of_children(model, area_column, indicators) %}
with

children as (
    select
        cells.{{ area_column }} as area,
        cells.month,
        seed.parent as indicator,
        sum(cells.event_count) as children_total
    from {{ model }} as cells
    inner join {{ indicators }} as seed on cells.indicator = seed.indicator
    where coalesce(seed.parent, '') <> ''
    group by all
),

parents as (
    select cells.{{ area_column }} as area, cells.month, cells.indicator, cells.event_count
    from {{ model }} as cells
    where cells.indicator in (select parent from {{ indicators }} where coalesce(parent, '') <> '')
)

select
    coalesce(parents.area, children.area) as area,
    coalesce(parents.month, children.month) as month,
    coalesce(parents.indicator, children.indicator) as indicator,
    parents.event_count,
    children.children_total
from parents
full outer join children
    on parents.area = children.area and parents.month = children.month and parents.indicator = children.indicator
where parents.event_count is distinct from children.children_total
{% endtest %}
