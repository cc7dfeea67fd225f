with

source as (

    select * from {{ source('reference', 'lsoas') }}

),

renamed as (

    select
        -- keys
        lsoa_code,
        msoa_code,
        ward_code,
        district_code,
        -- strings
        lsoa_name,
        -- numbers
        cast(population as integer) as population,
        cast(imd_score as double) as imd_score,
        cast(imd_decile as integer) as imd_decile
    from source

)

select * from renamed
