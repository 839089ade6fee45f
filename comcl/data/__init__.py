"""Pipeline part 1 (DESIGN §3): data sources, synthetic generators, degradation models, the prepare / degrade / split stages."""
