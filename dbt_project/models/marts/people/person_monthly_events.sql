{#- Events per pseudonymised person x month x indicator (non-zero rows only): the long feature table models use. -#}

select
    cast(person_key as {{ text_type() }}) as person_key,
    cast(event_month as date) as month,
    cast(indicator as {{ text_type() }}) as indicator,
    cast(count(*) as bigint) as event_count
from {{ ref('int_events_joined_to_places') }}
where person_key is not null
group by person_key, event_month, indicator
