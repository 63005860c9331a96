"""Where pages come from: an XML dump, SQL dumps of category links, and a live wiki's API."""
