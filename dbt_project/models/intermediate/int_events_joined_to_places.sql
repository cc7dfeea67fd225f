{#- One row per event from every feed, on one shape: who (person_key, household_key), where (UPRN, LSOA), when
    (event_date, month) and what (event_type, the agency that knows about it, the place indicator it counts towards).
    Incremental by event_month: --vars '{month: 2025-03-01}' rebuilds that month only; an incremental run without the
    var rebuilds every month touched by partitions loaded since the last run (late records included).
    Only months inside the platform's period (macros/period.sql) are kept: the staging models' within_period tests
    count what is left out. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_month',
        on_schema_change='append_new_columns',
    )
}}

{%- set month = month_var() %}
{%- if month is not none %}
    {%- set build_filter = "unioned.event_month = cast('" ~ month ~ "' as date)" %}
{%- elif is_incremental() %}
    {%- set build_filter = "unioned.partition_month >= (select coalesce(max(existing.partition_month), "
        ~ "cast('1900-01-01' as date)) from " ~ this ~ " as existing)" %}
{%- else %}
    {%- set build_filter = "true" %}
{%- endif %}

with

crimes as (

    select
        crimes.record_key as event_key,
        'police' as partner,
        'street_crimes' as feed,
        'crime:' || coalesce(groups.crime_group, 'other') as event_type,
        'crimes_' || coalesce(groups.crime_group, 'other') as indicator,
        'police' as agency,
        crimes.person_key,
        crimes.household_key,
        crimes.uprn,
        crimes.lsoa_code,
        crimes.event_date,
        crimes.event_month,
        crimes.partition_month,
        cast(null as varchar) as sex,
        cast(null as varchar) as age_band,
        cast(null as varchar) as ethnicity_group
    from {{ ref('stg_police__street_crimes') }} as crimes
    left join {{ ref('crime_type_groups') }} as groups
        on crimes.crime_type = groups.crime_type

),

police_people as (

    select
        record_key as event_key,
        'police' as partner,
        'person_records' as feed,
        'police_person:' || role as event_type,
        case role
            when 'victim' then 'police_victims'
            when 'offender' then 'police_offenders'
            when 'suspect' then 'police_suspects'
            when 'missing_person' then 'police_missing_persons'
        end as indicator,
        'police' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_police__person_records') }}

),

social_care as (

    select
        record_key as event_key,
        'county_council' as partner,
        'social_care_referrals' as feed,
        'social_care_referral' as event_type,
        'social_care_referrals' as indicator,
        'childrens_social_care' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_county_council__social_care_referrals') }}

),

homelessness as (

    select
        record_key as event_key,
        'district_councils' as partner,
        'homelessness_presentations' as feed,
        'homelessness_presentation' as event_type,
        'homelessness_presentations' as indicator,
        'housing' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_district_councils__homelessness_presentations') }}

),

asb as (

    select
        record_key as event_key,
        'district_councils' as partner,
        'asb_complaints' as feed,
        'asb_complaint' as event_type,
        'asb_complaints' as indicator,
        'community_safety' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_district_councils__asb_complaints') }}

),

ae as (

    select
        record_key as event_key,
        'nhs' as partner,
        'ae_attendances' as feed,
        'ae_attendance' as event_type,
        'ae_attendances' as indicator,
        'health' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_nhs__ae_attendances') }}

),

food_bank as (

    select
        record_key as event_key,
        'voluntary' as partner,
        'food_bank_referrals' as feed,
        'food_bank_referral' as event_type,
        'food_bank_referrals' as indicator,
        'voluntary_sector' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_voluntary__food_bank_referrals') }}

),

fire_visits as (

    select
        record_key as event_key,
        'fire' as partner,
        'safe_and_well_visits' as feed,
        'fire_safe_and_well_visit' as event_type,
        'fire_safe_and_well_visits' as indicator,
        'fire' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_fire__safe_and_well_visits') }}

),

{# A pupil-month is an event only when something happened: unauthorised absence or a suspension. The sessions
   themselves (denominators) are summed per place in int_lsoa_month_indicator_counts. #}
school_absence as (

    select
        record_key || ':school_absence' as event_key,
        'county_council' as partner,
        'school_attendance' as feed,
        'school_absence' as event_type,
        'school_unauthorised_absence_sessions' as indicator,
        'education' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_county_council__school_attendance') }}
    where sessions_missed_unauthorised > 0

),

school_suspension as (

    select
        record_key || ':school_suspension' as event_key,
        'county_council' as partner,
        'school_attendance' as feed,
        'school_suspension' as event_type,
        'school_suspensions' as indicator,
        'education' as agency,
        person_key,
        household_key,
        uprn,
        lsoa_code,
        event_date,
        event_month,
        partition_month,
        sex,
        age_band,
        ethnicity_group
    from {{ ref('stg_county_council__school_attendance') }}
    where suspensions > 0

),

unioned as (

    select * from crimes
    union all
    select * from police_people
    union all
    select * from social_care
    union all
    select * from homelessness
    union all
    select * from asb
    union all
    select * from ae
    union all
    select * from food_bank
    union all
    select * from fire_visits
    union all
    select * from school_absence
    union all
    select * from school_suspension

),

months_to_build as (

    select distinct unioned.event_month
    from unioned
    where
        {{ build_filter }}
        and {{ in_period('unioned.event_month') }}

)

select unioned.*
from unioned
inner join months_to_build on unioned.event_month = months_to_build.event_month
