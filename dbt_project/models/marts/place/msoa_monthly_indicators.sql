{#- MSOA x month x indicator: the LSOA mart summed over each msoa's LSOAs, with the msoa's deprivation decile. -#}

{{ rollup_indicators('msoa') }}
