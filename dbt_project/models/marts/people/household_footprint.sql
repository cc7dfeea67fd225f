{#- Per pseudonymised household: agencies known to, events by agency and period, multiple-needs flag. -#}

{{ footprint('household_key') }}
