with

source as (

    select * from {{ source('voluntary', 'food_bank_referrals') }}

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
        -- voucher
        referral_agency,
        crisis_type,
        cast(adults as integer) as adults,
        cast(children as integer) as children
    from source

)

select * from renamed
