{#- The calendar holds every month inside the platform's period in which an event was loaded: a calendar cut short
    (the 0..999 month spine once ended in 1983 after a 1900 event) or built from the wrong bounds fails here, not
    silently in a mart without the recent months. Returns the missing months. -#}
{% test covers_event_months(model, column_name, events, event_column='event_month') %}
select distinct events.{{ event_column }} as missing_month
from {{ events }} as events
where
    events.{{ event_column }} is not null
    and {{ in_period('events.' ~ event_column) }}
    and events.{{ event_column }} not in (
        select calendar.{{ column_name }} from {{ model }} as calendar where calendar.{{ column_name }} is not null
    )
{% endtest %}
