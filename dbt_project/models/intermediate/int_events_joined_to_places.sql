{#- One row per event from every feed, on one shape: who (person_key, household_key), where (UPRN, LSOA), when
    (event_date, month) and what (event_type, the agency that knows about it, the place indicator it counts towards).
    Incremental by event_month: --vars '{month: 2025-03-01}' rebuilds that month only; an incremental run without the
    var rebuilds every month touched by partitions loaded since the last run (late records included). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_month',
        on_schema_change='append_new_columns',
    )
}}

{%- set month = month_var() %}

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

{%- set simple_feeds = [
    ('stg_county_council__social_care_referrals', 'county_council', 'social_care_referrals',
     'social_care_referral', 'social_care_referrals', 'childrens_social_care'),
    ('stg_district_councils__homelessness_presentations', 'district_councils', 'homelessness_presentations',
     'homelessness_presentation', 'homelessness_presentations', 'housing'),
    ('stg_district_councils__asb_complaints', 'district_councils', 'asb_complaints',
     'asb_complaint', 'asb_complaints', 'community_safety'),
    ('stg_nhs__ae_attendances', 'nhs', 'ae_attendances', 'ae_attendance', 'ae_attendances', 'health'),
    ('stg_voluntary__food_bank_referrals', 'voluntary', 'food_bank_referrals',
     'food_bank_referral', 'food_bank_referrals', 'voluntary_sector'),
    ('stg_fire__safe_and_well_visits', 'fire', 'safe_and_well_visits',
     'fire_safe_and_well_visit', 'fire_safe_and_well_visits', 'fire'),
] %}

people_feeds as (

    {% for model, partner, feed, event_type, indicator, agency in simple_feeds %}
    select
        record_key as event_key,
        '{{ partner }}' as partner,
        '{{ feed }}' as feed,
        '{{ event_type }}' as event_type,
        '{{ indicator }}' as indicator,
        '{{ agency }}' as agency,
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
    from {{ ref(model) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

{#- A pupil-month is an event only when something happened: unauthorised absence or a suspension. The sessions
    themselves (denominators) are summed per place in int_lsoa_month_indicator_counts. -#}
school as (

    {% for kind, condition, indicator in [
        ('school_absence', 'sessions_missed_unauthorised > 0', 'school_unauthorised_absence_sessions'),
        ('school_suspension', 'suspensions > 0', 'school_suspensions'),
    ] %}
    select
        record_key || ':{{ kind }}' as event_key,
        'county_council' as partner,
        'school_attendance' as feed,
        '{{ kind }}' as event_type,
        '{{ indicator }}' as indicator,
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
    where {{ condition }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

unioned as (

    select * from crimes
    union all
    select * from police_people
    union all
    select * from people_feeds
    union all
    select * from school

)

select *
from unioned
{%- if month is not none %}
where event_month = cast('{{ month }}' as date)
{%- elif is_incremental() %}
where event_month in (
    select distinct event_month
    from unioned
    where partition_month >= (select coalesce(max(partition_month), cast('1900-01-01' as date)) from {{ this }})
)
{%- endif %}
