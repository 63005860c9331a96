"""`wikitune run`: the typed study config, its cached stages and the report."""
