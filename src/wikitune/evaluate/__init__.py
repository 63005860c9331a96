"""Evaluation: harmony prompts and parsing, scoring, the loop guard, retrieval, generation, serving.

One module per concern; scoring and parsing are pure functions over strings.
"""
