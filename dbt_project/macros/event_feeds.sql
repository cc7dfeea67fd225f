{#- How each partner feed becomes rows of int_events_joined_to_places: the one statement of it, the list `feeds` in
    event_feed_ctes() below. The model calls event_feed_ctes(): one CTE per entry, then `unioned`, all of them. The
    seed `indicators` names the same indicators with their partner, feed and agency (and adds labels, units and the
    hierarchy); tests/dbt/test_event_feeds.py fails when the two disagree, and the relationships test on the
    model's indicator column fails a build that writes an indicator the seed does not know.

    Why a Jinja literal here rather than reading seeds/indicators.csv: dbt cannot read a seed while it parses (only
    run_query inside `if execute`, against a seed already loaded), and the refs to the staging models must be known
    at parse time for dbt to order the DAG. A literal keeps `dbt parse`, `dbt compile` and `dbt docs generate`
    working with no warehouse, on every adapter (the SQL is ANSI: `||`, coalesce, case; types via text_type()),
    and sqlfluff's jinja templater can render it (it has no fromyaml, and a macro's return() value does not pass
    through another macro there, hence one macro holding the list). The literal uses only strings, lists and
    dicts, so Python reads it too (ast.literal_eval of `set feeds = [...]`).

    Each entry:
      cte        the CTE's name in the model
      partner, feed, agency   the feed (the staging model is stg_<partner>__<feed>) and the agency that knows of it
      event_type, indicator   either a string (the same for every row) or a rule on a column:
                              {'column': c, 'prefix': p, 'otherwise': o} -> 'p' || coalesce(c, 'o')
                              {'column': c, 'prefix': p} -> 'p' || c
                              {'column': c, 'values': {v: indicator, ...}} -> case c when 'v' then ... end
      key_suffix  appended to record_key when one record gives several events (school attendance)
      where       which records are events (default: all)
      join        {'seed': s, 'alias': a, 'on': column}: a left join to a seed on a column of the feed
      demographics  'none' when the feed has no sex / age_band / ethnicity_group columns
-#}


{#- A string is a constant; a dict is a rule on a column (see the header). -#}
{% macro event_feed_value(rule) -%}
{%- if rule is string -%}
'{{ rule }}'
{%- elif 'values' in rule -%}
case {{ rule['column'] }}
{%- for value, result in rule['values'].items() %} when '{{ value }}' then '{{ result }}'{% endfor %} end
{%- elif 'otherwise' in rule -%}
'{{ rule['prefix'] }}' || coalesce({{ rule['column'] }}, '{{ rule['otherwise'] }}')
{%- else -%}
'{{ rule['prefix'] }}' || {{ rule['column'] }}
{%- endif -%}
{%- endmacro %}


{#- A feed without demographics (street crimes) gives typed nulls, so the CTEs union on one shape. -#}
{% macro event_feed_demographic(f, column) -%}
{%- if f.get('demographics') == 'none' -%}
cast(null as {{ text_type() }})
{%- else -%}
src.{{ column }}
{%- endif -%}
{%- endmacro %}


{#- One feed's events on the model's shape (column order matters: the CTEs are unioned with select *). -#}
{% macro event_feed_select(f) -%}
{%- set source = 'stg_' ~ f['partner'] ~ '__' ~ f['feed'] -%}
select
    src.record_key{% if f.get('key_suffix') %} || '{{ f['key_suffix'] }}'{% endif %} as event_key,
    '{{ f['partner'] }}' as partner,
    '{{ f['feed'] }}' as feed,
    {{ event_feed_value(f['event_type']) }} as event_type,
    {{ event_feed_value(f['indicator']) }} as indicator,
    '{{ f['agency'] }}' as agency,
    src.person_key,
    src.household_key,
    src.uprn,
    src.lsoa_code,
    src.event_date,
    src.event_month,
    src.partition_month,
    {{ event_feed_demographic(f, 'sex') }} as sex,
    {{ event_feed_demographic(f, 'age_band') }} as age_band,
    {{ event_feed_demographic(f, 'ethnicity_group') }} as ethnicity_group
from {{ ref(source) }} as src
{%- if f.get('join') %}
left join {{ ref(f['join']['seed']) }} as {{ f['join']['alias'] }}
    on src.{{ f['join']['on'] }} = {{ f['join']['alias'] }}.{{ f['join']['on'] }}
{%- endif %}
{%- if f.get('where') %}
where {{ f['where'] }}
{%- endif %}
{%- endmacro %}


{#- Every feed's CTE, then `unioned`: all of them on one shape (the model continues after it with a comma). -#}
{% macro event_feed_ctes() -%}
{%- set feeds = [
    {'cte': 'crimes', 'partner': 'police', 'feed': 'street_crimes', 'agency': 'police',
     'event_type': {'column': 'groups.crime_group', 'prefix': 'crime:', 'otherwise': 'other'},
     'indicator': {'column': 'groups.crime_group', 'prefix': 'crimes_', 'otherwise': 'other'},
     'join': {'seed': 'crime_type_groups', 'alias': 'groups', 'on': 'crime_type'},
     'demographics': 'none'},
    {'cte': 'police_people', 'partner': 'police', 'feed': 'person_records', 'agency': 'police',
     'event_type': {'column': 'src.role', 'prefix': 'police_person:'},
     'indicator': {'column': 'src.role', 'values': {
         'victim': 'police_victims', 'offender': 'police_offenders', 'suspect': 'police_suspects',
         'missing_person': 'police_missing_persons'}}},
    {'cte': 'social_care', 'partner': 'county_council', 'feed': 'social_care_referrals',
     'agency': 'childrens_social_care', 'event_type': 'social_care_referral', 'indicator': 'social_care_referrals'},
    {'cte': 'homelessness', 'partner': 'district_councils', 'feed': 'homelessness_presentations',
     'agency': 'housing', 'event_type': 'homelessness_presentation', 'indicator': 'homelessness_presentations'},
    {'cte': 'asb', 'partner': 'district_councils', 'feed': 'asb_complaints',
     'agency': 'community_safety', 'event_type': 'asb_complaint', 'indicator': 'asb_complaints'},
    {'cte': 'ae', 'partner': 'nhs', 'feed': 'ae_attendances',
     'agency': 'health', 'event_type': 'ae_attendance', 'indicator': 'ae_attendances'},
    {'cte': 'food_bank', 'partner': 'voluntary', 'feed': 'food_bank_referrals',
     'agency': 'voluntary_sector', 'event_type': 'food_bank_referral', 'indicator': 'food_bank_referrals'},
    {'cte': 'fire_visits', 'partner': 'fire', 'feed': 'safe_and_well_visits',
     'agency': 'fire', 'event_type': 'fire_safe_and_well_visit', 'indicator': 'fire_safe_and_well_visits'},
    {'cte': 'school_absence', 'partner': 'county_council', 'feed': 'school_attendance', 'agency': 'education',
     'event_type': 'school_absence', 'indicator': 'school_unauthorised_absence_sessions',
     'key_suffix': ':school_absence', 'where': 'src.sessions_missed_unauthorised > 0'},
    {'cte': 'school_suspension', 'partner': 'county_council', 'feed': 'school_attendance', 'agency': 'education',
     'event_type': 'school_suspension', 'indicator': 'school_suspensions',
     'key_suffix': ':school_suspension', 'where': 'src.suspensions > 0'},
] -%}
{%- for f in feeds %}
{{ f['cte'] }} as (

{{ event_feed_select(f) }}

),
{% endfor %}
unioned as (
{%- for f in feeds %}
{%- if not loop.first %}
union all
{%- endif %}
select * from {{ f['cte'] }}
{%- endfor %}
)
{%- endmacro %}
