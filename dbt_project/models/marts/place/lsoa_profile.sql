{#- One row per LSOA x indicator over the latest 12 months of data: events, rate per 1,000 residents, the change
    against the 12 months before, the monthly trend (least-squares slope, events per month) and the rank of the
    rate within the district (1 = highest). -#}

with

calendar as (

    select * from {{ ref('dim_calendar') }}

),

monthly as (

    select
        lsoa.lsoa_code,
        lsoa.district_code,
        lsoa.indicator,
        lsoa.event_count,
        lsoa.population,
        calendar.months_before_latest
    from {{ ref('lsoa_monthly_indicators') }} as lsoa
    inner join calendar on lsoa.month = calendar.month
    where calendar.months_before_latest < 24

),

summarised as (

    select
        lsoa_code,
        district_code,
        indicator,
        sum(case when months_before_latest < 12 then event_count else 0 end) as events_12m,
        sum(case when months_before_latest >= 12 then event_count else 0 end) as events_prev_12m,
        count(distinct case when months_before_latest >= 12 then months_before_latest end) as prev_months_covered,
        avg(case when months_before_latest < 12 then population end) as avg_population_12m,
        regr_slope(
            case when months_before_latest < 12 then event_count end,
            case when months_before_latest < 12 then -months_before_latest end
        ) as trend_events_per_month
    from monthly
    group by lsoa_code, district_code, indicator

),

rated as (

    select
        *,
        {{ rate_per_1000('events_12m', 'avg_population_12m') }} as rate_per_1000_12m
    from summarised

)

select
    cast(rated.lsoa_code as {{ text_type() }}) as lsoa_code,
    cast(rated.indicator as {{ text_type() }}) as indicator,
    cast(lsoas.lsoa_name as {{ text_type() }}) as lsoa_name,
    cast(rated.district_code as {{ text_type() }}) as district_code,
    cast(lsoas.imd_decile as integer) as imd_decile,
    cast(rated.events_12m as bigint) as events_12m,
    cast(rated.rate_per_1000_12m as double) as rate_per_1000_12m,
    cast(case when rated.prev_months_covered = 12 then rated.events_prev_12m end as bigint) as events_prev_12m,
    cast(
        case
            when rated.prev_months_covered = 12 and rated.events_prev_12m > 0
                then round(100.0 * (rated.events_12m - rated.events_prev_12m) / rated.events_prev_12m, 1)
        end as double
    ) as change_vs_prev_12m_pct,
    cast(round(coalesce(rated.trend_events_per_month, 0), 4) as double) as trend_events_per_month,
    cast(
        rank() over (partition by rated.district_code, rated.indicator order by rated.rate_per_1000_12m desc)
        as integer
    ) as rank_in_district
from rated
inner join {{ ref('dim_lsoa') }} as lsoas on rated.lsoa_code = lsoas.lsoa_code
