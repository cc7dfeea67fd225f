with

source as (

    select * from {{ source('fire', 'safe_and_well_visits') }}

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
        -- visit
        cast(occupants as integer) as occupants,
        cast(risk_score as integer) as risk_score,
        cast(smoke_alarm_fitted as boolean) as has_smoke_alarm_fitted,
        referrer
    from source

)

select * from renamed
