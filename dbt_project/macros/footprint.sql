{#- The footprint of a pseudonymised key (person_key or household_key) across agencies: which agencies know it,
    events by agency overall and in the latest 12 months of data, first/last event and the multiple-needs flag
    (known to var('multiple_needs_agencies') or more agencies in the latest 12 months). -#}
{% macro footprint(key) -%}
{%- set footprint_agencies = ['police', 'childrens_social_care', 'education', 'housing', 'community_safety',
                             'health', 'voluntary_sector', 'fire'] %}
with

events as (

    select * from {{ ref('int_events_joined_to_places') }}
    where {{ key }} is not null

),

latest as (

    select max(event_month) as latest_month from {{ ref('int_events_joined_to_places') }}

),

flagged as (

    select
        events.*,
        events.event_month > {{ add_months(-12, 'latest.latest_month') }} as in_latest_12m
    from events
    cross join latest

),

{#- Two stages, key x agency then key, instead of DISTINCT aggregates over the events: a DISTINCT aggregate
    keeps a hash table per group, and with 600,000 person keys that made this model 2.5x slower
    (county nightly: 4.0 s -> 1.6 s for the same rows). -#}
per_agency as (

    select
        {{ key }},
        agency,
        count(*) as events_total,
        sum(case when in_latest_12m then 1 else 0 end) as events_12m,
        min(event_date) as first_event_date,
        max(event_date) as last_event_date,
        -- arg_max skips NULL LSOAs: the latest event that has one, so stage two ranks on its date
        {{ arg_max('lsoa_code', 'event_date') }} as latest_lsoa_code,
        max(case when lsoa_code is not null then event_date end) as latest_located_date
    from flagged
    group by {{ key }}, agency

),

{% if key == 'household_key' -%}
people as (

    select household_key, count(distinct person_key) as people_count
    from events
    group by household_key

),

{% endif -%}
per_key as (

    select
        per_agency.{{ key }},
        {{ sorted_listagg('agency', ', ') }} as agencies_known_to,
        {% if key == 'household_key' %}
        max(people.people_count) as people_count,
        {% endif %}
        count(agency) as agency_count,
        sum(case when agency is not null and events_12m > 0 then 1 else 0 end) as agency_count_12m,
        sum(events_total) as events_total,
        sum(events_12m) as events_12m,
        {% for agency in footprint_agencies %}
        sum(case when agency = '{{ agency }}' then events_total else 0 end) as {{ agency }}_events_total,
        sum(case when agency = '{{ agency }}' then events_12m else 0 end) as {{ agency }}_events_12m,
        {% endfor %}
        min(first_event_date) as first_event_date,
        max(last_event_date) as last_event_date,
        {{ arg_max('latest_lsoa_code', 'latest_located_date') }} as latest_lsoa_code
    from per_agency
    {% if key == 'household_key' %}
    left join people on people.household_key = per_agency.household_key
    {% endif %}
    group by per_agency.{{ key }}

)

select
    cast({{ key }} as {{ text_type() }}) as {{ key }},
    {% if key == 'household_key' %}
    cast(people_count as integer) as people_count,
    {% endif %}
    cast(agencies_known_to as {{ text_type() }}) as agencies_known_to,
    cast(agency_count as integer) as agency_count,
    cast(agency_count_12m as integer) as agency_count_12m,
    cast(events_total as bigint) as events_total,
    cast(events_12m as bigint) as events_12m,
    {% for agency in footprint_agencies %}
    cast({{ agency }}_events_total as bigint) as {{ agency }}_events_total,
    cast({{ agency }}_events_12m as bigint) as {{ agency }}_events_12m,
    {% endfor %}
    cast(first_event_date as date) as first_event_date,
    cast(last_event_date as date) as last_event_date,
    cast(latest_lsoa_code as {{ text_type() }}) as latest_lsoa_code,
    agency_count_12m >= {{ var('multiple_needs_agencies') }} as multiple_needs_flag
from per_key
{%- endmacro %}
