{#- A monthly mart holds exactly the calendar's months: a month lost from the mart (or one the calendar does not
    have) fails the build. With covers_event_months on the calendar, no month with loaded events can disappear from
    a mart or the published table while every other test passes (issue #22). Returns each differing month. -#}
{% test same_months_as(model, column_name, calendar, calendar_column='month') %}
with

model_months as (
    select distinct cast({{ column_name }} as date) as month from {{ model }}
),

calendar_months as (
    select distinct cast({{ calendar_column }} as date) as month from {{ calendar }}
)

select
    coalesce(model_months.month, calendar_months.month) as month,
    case when model_months.month is null then 'missing from the model' else 'not in the calendar' end as problem
from model_months
full outer join calendar_months on model_months.month = calendar_months.month
where model_months.month is null or calendar_months.month is null
{% endtest %}
