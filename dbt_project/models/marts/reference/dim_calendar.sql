{#- Months covered by the event data (first to latest event month), with the labels analysts group by. Bounded by
    the platform's period (macros/period.sql), never stretched by an event outside it: int_events_joined_to_places
    keeps only events inside the period, and the bounds are clamped to it here as well. Tests: within_period (no
    month outside the period) and covers_event_months (no month with events missing, e.g. cut by the spine).
    The spine is built from a digits cross join (0..999 months) so it is plain, portable SQL. -#}

with

bounds as (

    select
        greatest(min(event_month), {{ period_start() }}) as first_month,
        least(max(event_month), {{ period_end() }}) as latest_month
    from {{ ref('int_events_joined_to_places') }}
    where {{ in_period('event_month') }}

),

digits as (

    select digit_values.d
    from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as digit_values (d)

),

offsets as (

    select units.d + 10 * tens.d + 100 * hundreds.d as n
    from digits as units
    cross join digits as tens
    cross join digits as hundreds

),

spine as (

    select
        bounds.latest_month,
        cast({{ add_months('offsets.n', 'bounds.first_month') }} as date) as month
    from bounds
    cross join offsets
    where offsets.n <= {{ months_between('bounds.first_month', 'bounds.latest_month') }}

)

select
    month,
    cast({{ year_start('month') }} as date) as year_start,
    cast(extract(year from month) as integer) as calendar_year,
    cast(extract(month from month) as integer) as month_number,
    cast(
        case
            when extract(month from month) >= 4 then extract(year from month)
            else extract(year from month) - 1
        end as integer
    ) as financial_year_start,
    cast({{ months_between('month', 'latest_month') }} as integer) as months_before_latest,
    month = latest_month as is_latest_month
from spine
