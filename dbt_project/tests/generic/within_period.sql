{#- Every month of the column lies inside the platform's period (macros/period.sql). One row per offending row, so
    the count says how many. On the calendar and marts it is an error; on a staging model's event_month a warning
    that counts the events the marts leave out (a 1900 typo, a 2031 clock). -#}
{% test within_period(model, column_name) %}
select {{ column_name }} as month_outside_the_period
from {{ model }}
where {{ column_name }} is not null and not {{ in_period(column_name) }}
{% endtest %}
