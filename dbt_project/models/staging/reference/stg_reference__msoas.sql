with

source as (

    select * from {{ source('reference', 'msoas') }}

),

renamed as (

    select
        msoa_code,
        district_code,
        msoa_name
    from source

)

select * from renamed
