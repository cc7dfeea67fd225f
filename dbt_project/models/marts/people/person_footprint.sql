{#- Per pseudonymised person: agencies known to, events by agency and period, multiple-needs flag. -#}

{{ footprint('person_key') }}
