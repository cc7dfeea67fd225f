with

source as (

    select * from {{ source('nhs', 'ae_attendances') }}

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
        -- attendance
        chief_complaint_snomed,
        attendance_source,
        discharge_destination,
        cast(acuity as integer) as acuity
    from source

)

select * from renamed
