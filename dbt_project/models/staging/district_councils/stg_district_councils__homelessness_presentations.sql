with

source as (

    select * from {{ source('district_councils', 'homelessness_presentations') }}

),

renamed as (

    select
        -- keys
        record_key,
        person_key,
        household_key,
        cast(uprn as bigint) as uprn,
        lsoa_code,
        -- dates
        cast(event_date as date) as event_date,
        cast(event_month as date) as event_month,
        cast(partition_month as date) as partition_month,
        -- person (coarsened)
        sex,
        birth_year_month,
        age_band,
        ethnicity_group,
        -- presentation
        district_code,
        cast(household_adults as integer) as household_adults,
        cast(household_children as integer) as household_children,
        reason_for_loss,
        duty_owed
    from source

)

select * from renamed
