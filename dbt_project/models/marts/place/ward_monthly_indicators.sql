{#- Ward x month x indicator: the LSOA mart summed over the ward's LSOAs, with its deprivation decile. -#}

{{ rollup_indicators('ward') }}
