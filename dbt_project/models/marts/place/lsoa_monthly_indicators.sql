{#- One row per LSOA x month x indicator, zeros included, with residents and the rate per 1,000 residents.
    Incremental by month: --vars '{month: 2025-03-01}' rebuilds that month only. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy=replace_months_strategy(),
        partition_by=month_partitions('month'),
        unique_key='month',
        on_schema_change='fail',
    )
}}

{%- set month = month_var() %}

with

months as (

    select month from {{ ref('dim_calendar') }}
    {%- if month is not none %}
        where month = cast('{{ month }}' as date)
    {%- endif %}

),

spine as (

    select
        lsoas.lsoa_code,
        lsoas.msoa_code,
        lsoas.ward_code,
        lsoas.district_code,
        lsoas.imd_decile,
        lsoas.population as latest_population,
        months.month,
        indicators.indicator
    from {{ ref('dim_lsoa') }} as lsoas
    cross join months
    cross join {{ ref('indicators') }} as indicators

),

counts as (

    select * from {{ ref('int_lsoa_month_indicator_counts') }}

),

population as (

    select * from {{ ref('stg_reference__lsoa_population') }}

),

joined as (

    select
        spine.lsoa_code,
        spine.month,
        spine.indicator,
        coalesce(counts.event_count, 0) as event_count,
        coalesce(population.population, spine.latest_population) as population,
        spine.msoa_code,
        spine.ward_code,
        spine.district_code,
        spine.imd_decile
    from spine
    left join counts
        on
            spine.lsoa_code = counts.lsoa_code
            and spine.month = counts.month
            and spine.indicator = counts.indicator
    left join population
        on
            spine.lsoa_code = population.lsoa_code
            and spine.month = population.month

)

select
    cast(lsoa_code as {{ text_type() }}) as lsoa_code,
    cast(month as date) as month,
    cast(indicator as {{ text_type() }}) as indicator,
    cast(event_count as bigint) as event_count,
    cast(population as integer) as population,
    cast({{ rate_per_1000('event_count', 'population') }} as double) as rate_per_1000,
    cast(msoa_code as {{ text_type() }}) as msoa_code,
    cast(ward_code as {{ text_type() }}) as ward_code,
    cast(district_code as {{ text_type() }}) as district_code,
    cast(imd_decile as integer) as imd_decile
from joined
