"""wikitune: turn a Wikipedia category tree into a domain-adapted LLM, and measure what it learned."""

__version__ = "0.1.0"
