{#- One row per event from every feed, on one shape: who (person_key, household_key), where (UPRN, LSOA), when
    (event_date, month) and what (event_type, the agency that knows about it, the place indicator it counts towards).
    Incremental by event_month: --vars '{month: 2025-03-01}' rebuilds that month only; an incremental run without the
    var rebuilds every month touched by partitions loaded since the last run (late records included).
    Only months inside the platform's period (macros/period.sql) are kept: the staging models' within_period tests
    count what is left out. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy=replace_months_strategy(),
        partition_by=month_partitions('event_month'),
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

{#- One CTE per feed, generated from macros/event_feeds.sql (the one statement of which feed gives which events,
    event types, indicators and agency; the seed `indicators` is checked against it). A pupil-month is an event
    only when something happened (unauthorised absence or a suspension): the sessions themselves (denominators) are
    summed per place in int_lsoa_month_indicator_counts. #}
with

{{ event_feed_ctes() }},

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
