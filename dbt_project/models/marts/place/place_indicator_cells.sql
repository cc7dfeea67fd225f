{#- Every cell the publish step may release, at every geography, before disclosure control: LSOA, ward, MSOA,
    district and county x month x indicator, each with the parent it adds up to. Primary suppression (counts
    1..threshold-1; zeros kept) is decided here in SQL so unit_tests pin it; secondary suppression needs the margin
    equations of the whole table and runs in published.place_monthly_indicators (orchestration/lib/disclosure.py). -#}

with

lsoa as (

    select
        'lsoa' as geography_level,
        lsoa_code as area_code,
        district_code,
        month,
        indicator,
        event_count,
        population
    from {{ ref('lsoa_monthly_indicators') }}

),

ward as (

    select
        'ward' as geography_level,
        ward_code as area_code,
        district_code,
        month,
        indicator,
        event_count,
        population
    from {{ ref('ward_monthly_indicators') }}

),

msoa as (

    select
        'msoa' as geography_level,
        msoa_code as area_code,
        district_code,
        month,
        indicator,
        event_count,
        population
    from {{ ref('msoa_monthly_indicators') }}

),

district as (

    select
        'district' as geography_level,
        district_code as area_code,
        district_code,
        month,
        indicator,
        event_count,
        population
    from {{ ref('district_monthly_indicators') }}

),

county as (

    select
        'county' as geography_level,
        'county' as area_code,
        cast(null as {{ text_type() }}) as district_code,
        month,
        indicator,
        sum(event_count) as event_count,
        sum(population) as population
    from {{ ref('district_monthly_indicators') }}
    group by month, indicator

),

cells as (

    select * from lsoa
    union all
    select * from ward
    union all
    select * from msoa
    union all
    select * from district
    union all
    select * from county

)

select
    geography_level,
    area_code,
    district_code,
    month,
    indicator,
    cast(event_count as bigint) as event_count,
    cast(population as bigint) as population,
    {{ is_primary_suppressed('event_count') }} as is_primary_suppressed
from cells
