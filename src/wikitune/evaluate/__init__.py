"""Evaluation: `eval` (answer QA sets, score, summarise), scoring, retrieval (rag mode), perplexity,
the LLM judge, and `compare` over run directories.

One module per concern; scoring is pure functions over strings. Prompting, parsing and generating
with gpt-oss live in `wikitune.gptoss`.
"""
