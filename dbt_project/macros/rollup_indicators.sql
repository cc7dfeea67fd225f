{#- Roll the LSOA x month x indicator mart up to a larger area (ward, MSOA, district): counts and residents are
    summed over the area's LSOAs, so "area total = sum of its LSOAs" holds by construction (and is tested). -#}
{% macro rollup_indicators(level) -%}
with

lsoa as (

    select * from {{ ref('lsoa_monthly_indicators') }}

),

areas as (

    select * from {{ ref('dim_' ~ level) }}

),

summed as (

    select
        {{ level }}_code,
        month,
        indicator,
        sum(event_count) as event_count,
        sum(population) as population
    from lsoa
    group by {{ level }}_code, month, indicator

)

select
    cast(summed.{{ level }}_code as {{ text_type() }}) as {{ level }}_code,
    cast(summed.month as date) as month,
    cast(summed.indicator as {{ text_type() }}) as indicator,
    cast(summed.event_count as bigint) as event_count,
    cast(summed.population as integer) as population,
    cast({{ rate_per_1000('summed.event_count', 'summed.population') }} as double) as rate_per_1000,
    {%- if level != 'district' %}
    cast(areas.district_code as {{ text_type() }}) as district_code,
    {%- endif %}
    cast(areas.imd_decile as integer) as imd_decile
from summed
left join areas on summed.{{ level }}_code = areas.{{ level }}_code
{%- endmacro %}
