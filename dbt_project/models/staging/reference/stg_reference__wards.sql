with

source as (

    select * from {{ source('reference', 'wards') }}

),

renamed as (

    select
        ward_code,
        district_code,
        ward_name
    from source

)

select * from renamed
