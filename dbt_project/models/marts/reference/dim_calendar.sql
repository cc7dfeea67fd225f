{#- Months covered by the event data (first to latest event month), with the labels analysts group by. -#}

with

bounds as (

    select
        min(event_month) as first_month,
        max(event_month) as latest_month
    from {{ ref('int_events_joined_to_places') }}

),

{#- date_spine nests its own CTEs, so the bounds are passed as self-contained subqueries. -#}
{%- set events = ref('int_events_joined_to_places') %}
spine as (

    {{ dbt.date_spine(
        'month',
        "(select min(event_month) from " ~ events ~ ")",
        "(select " ~ dbt.dateadd('month', 1, 'max(event_month)') ~ " from " ~ events ~ ")"
    ) }}

)

select
    cast(spine.date_month as date) as month,
    cast({{ dbt.date_trunc('year', 'spine.date_month') }} as date) as year_start,
    cast(extract(year from spine.date_month) as integer) as calendar_year,
    cast(extract(month from spine.date_month) as integer) as month_number,
    cast(
        case
            when extract(month from spine.date_month) >= 4 then extract(year from spine.date_month)
            else extract(year from spine.date_month) - 1
        end as integer
    ) as financial_year_start,
    cast({{ dbt.datediff('spine.date_month', 'bounds.latest_month', 'month') }} as integer) as months_before_latest,
    spine.date_month = bounds.latest_month as is_latest_month
from spine
cross join bounds
