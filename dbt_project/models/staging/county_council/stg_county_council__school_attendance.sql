with

source as (

    select * from {{ source('county_council', 'school_attendance') }}

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
        -- attendance (one row per pupil per term month)
        cast(school_urn as {{ text_type() }}) as school_urn,
        cast(sessions_possible as integer) as sessions_possible,
        cast(sessions_missed_authorised as integer) as sessions_missed_authorised,
        cast(sessions_missed_unauthorised as integer) as sessions_missed_unauthorised,
        cast(suspensions as integer) as suspensions,
        -- flags
        cast(permanent_exclusion as boolean) as is_permanently_excluded,
        cast(fsm_eligible as boolean) as is_fsm_eligible,
        sen_status
    from source

)

select * from renamed
