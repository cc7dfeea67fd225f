with

source as (

    select * from {{ source('reference', 'lsoa_population') }}

),

renamed as (

    select
        lsoa_code,
        cast(month as date) as month,
        cast(population as integer) as population
    from source

)

select * from renamed
