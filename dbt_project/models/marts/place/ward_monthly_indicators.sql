{#- WARD x month x indicator: the LSOA mart summed over each ward's LSOAs, with the ward's deprivation decile. -#}

{{ rollup_indicators('ward') }}
