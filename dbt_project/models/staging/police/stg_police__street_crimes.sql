with

source as (

    select * from {{ source('police', 'street_crimes') }}

),

renamed as (

    select
        -- keys
        record_key,
        cast(null as {{ text_type() }}) as person_key,
        cast(null as {{ text_type() }}) as household_key,
        cast(uprn as bigint) as uprn,
        lsoa_code,
        -- dates
        cast(event_date as date) as event_date,
        cast(event_month as date) as event_month,
        cast(partition_month as date) as partition_month,
        -- crime
        crime_type,
        last_outcome_category,
        cast(longitude as double) as longitude,
        cast(latitude as double) as latitude
    from source

)

select * from renamed
