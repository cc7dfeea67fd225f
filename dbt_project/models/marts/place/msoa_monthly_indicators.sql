{#- MSOA x month x indicator: the LSOA mart summed over its LSOAs, with its deprivation decile. -#}

{{ rollup_indicators('msoa') }}
