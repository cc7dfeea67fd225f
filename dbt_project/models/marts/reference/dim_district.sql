{#- Districts with residents and a population-weighted IMD score; decile ranks districts (1 = most deprived). -#}

with

lsoas as (

    select * from {{ ref('stg_reference__lsoas') }}

),

scored as (

    select
        district_code,
        count(*) as lsoa_count,
        sum(population) as population,
        sum(imd_score * population) / nullif(sum(population), 0) as imd_score
    from lsoas
    group by district_code

)

select
    districts.district_code,
    districts.district_name,
    cast(scored.lsoa_count as integer) as lsoa_count,
    cast(scored.population as integer) as population,
    round(scored.imd_score, 3) as imd_score,
    cast(ntile(10) over (order by scored.imd_score desc) as integer) as imd_decile
from {{ ref('stg_reference__districts') }} as districts
inner join scored on districts.district_code = scored.district_code
