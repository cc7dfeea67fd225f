{#- LSOAs with every geography they roll up to and their deprivation (IMD decile 1 = most deprived). -#}

select
    lsoas.lsoa_code,
    lsoas.lsoa_name,
    lsoas.msoa_code,
    msoas.msoa_name,
    lsoas.ward_code,
    wards.ward_name,
    lsoas.district_code,
    districts.district_name,
    lsoas.population,
    lsoas.imd_score,
    lsoas.imd_decile
from {{ ref('stg_reference__lsoas') }} as lsoas
left join {{ ref('stg_reference__msoas') }} as msoas on lsoas.msoa_code = msoas.msoa_code
left join {{ ref('stg_reference__wards') }} as wards on lsoas.ward_code = wards.ward_code
left join {{ ref('stg_reference__districts') }} as districts on lsoas.district_code = districts.district_code
