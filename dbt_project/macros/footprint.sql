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

per_key as (

    select
        {{ key }},
        {% if key == 'household_key' %}
        count(distinct person_key) as people_count,
        {% endif %}
        string_agg(distinct agency, ', ' order by agency) as agencies_known_to,
        count(distinct agency) as agency_count,
        count(distinct case when in_latest_12m then agency end) as agency_count_12m,
        count(*) as events_total,
        sum(case when in_latest_12m then 1 else 0 end) as events_12m,
        {% for agency in footprint_agencies %}
        sum(case when agency = '{{ agency }}' then 1 else 0 end) as {{ agency }}_events_total,
        sum(case when agency = '{{ agency }}' and in_latest_12m then 1 else 0 end) as {{ agency }}_events_12m,
        {% endfor %}
        min(event_date) as first_event_date,
        max(event_date) as last_event_date,
        arg_max(lsoa_code, event_date) as latest_lsoa_code
    from flagged
    group by {{ key }}

)

select
    cast({{ key }} as varchar) as {{ key }},
    {% if key == 'household_key' %}
    cast(people_count as integer) as people_count,
    {% endif %}
    cast(agencies_known_to as varchar) as agencies_known_to,
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
    cast(latest_lsoa_code as varchar) as latest_lsoa_code,
    agency_count_12m >= {{ var('multiple_needs_agencies') }} as multiple_needs_flag
from per_key
{%- endmacro %}
