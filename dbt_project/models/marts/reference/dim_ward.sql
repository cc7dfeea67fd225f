{#- WARDs with residents and a population-weighted deprivation score; decile ranks wards (1 = most deprived). -#}

with

lsoas as (

    select * from {{ ref('stg_reference__lsoas') }}

),

scored as (

    select
        ward_code,
        count(*) as lsoa_count,
        sum(population) as population,
        sum(imd_score * population) / nullif(sum(population), 0) as imd_score
    from lsoas
    group by ward_code

)

select
    areas.ward_code,
    areas.ward_name,
    areas.district_code,
    cast(scored.lsoa_count as integer) as lsoa_count,
    cast(scored.population as integer) as population,
    round(scored.imd_score, 3) as imd_score,
    cast(ntile(10) over (order by scored.imd_score desc) as integer) as imd_decile
from {{ ref('stg_reference__wards') }} as areas
inner join scored on areas.ward_code = scored.ward_code
