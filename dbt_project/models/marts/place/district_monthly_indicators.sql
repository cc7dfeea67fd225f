{#- DISTRICT x month x indicator: the LSOA mart summed over each district's LSOAs, with the district's deprivation decile. -#}

{{ rollup_indicators('district') }}
