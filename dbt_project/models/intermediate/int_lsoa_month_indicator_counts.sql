{#- Non-zero counts per LSOA x month x indicator. A view: the incremental mart filters it by month, and DuckDB pushes
    that filter down. School sessions are sums (not rows): sessions possible is the denominator of absence rates.
    A parent indicator of the seed `indicators` (crimes_total) is the sum of its children's counts. -#}
{{ config(materialized='view') }}

with

events as (

    select
        lsoa_code,
        event_month as month,
        indicator,
        count(*) as event_count
    from {{ ref('int_events_joined_to_places') }}
    where
        lsoa_code is not null
        and feed <> 'school_attendance'
    group by lsoa_code, event_month, indicator

),

parents as (

    -- a parent indicator (crimes_total) counts its children's events: the hierarchy is the seed's (column
    -- parent), stated there once; no feed or indicator is named here
    select
        events.lsoa_code,
        events.month,
        catalogue.parent as indicator,
        cast(sum(events.event_count) as bigint) as event_count
    from events
    inner join {{ ref('indicators') }} as catalogue
        on events.indicator = catalogue.indicator
    where catalogue.parent is not null and catalogue.parent <> ''
    group by events.lsoa_code, events.month, catalogue.parent

),

school_sums as (

    select
        lsoa_code,
        event_month as month,
        sum(sessions_possible) as school_sessions_possible,
        sum(sessions_missed_unauthorised) as school_unauthorised_absence_sessions,
        sum(suspensions) as school_suspensions
    from {{ ref('stg_county_council__school_attendance') }}
    where lsoa_code is not null
    group by lsoa_code, event_month

),

school as (

    select
        lsoa_code,
        month,
        'school_sessions_possible' as indicator,
        school_sessions_possible as event_count
    from school_sums
    union all
    select
        lsoa_code,
        month,
        'school_unauthorised_absence_sessions' as indicator,
        school_unauthorised_absence_sessions as event_count
    from school_sums
    union all
    select
        lsoa_code,
        month,
        'school_suspensions' as indicator,
        school_suspensions as event_count
    from school_sums

)

select * from events
union all
select * from parents
union all
select * from school
