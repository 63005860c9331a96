"""Knowledge injection: training documents that state a corpus's facts in many phrasings (`wikitune augment`).

    from wikitune.augment import AugmentConfig, run_augment
    run_augment(AugmentConfig(corpus="corpus/demo", out="aug/demo-facts", method="facts", k=5))

`run.py` holds the rules every method keeps (training articles only, excluded facts, determinism,
atomic output); `guard.py` decides which facts may not be stated; `facts.py` is the `facts`
method (template phrasings in `templates/facts.ja.yaml`, no LLM); `generate.py` holds the LLM
methods `rephrase`, `entigraph` and `qa` (prompts in `prompts/*.ja.md`), `llm.py` their requests,
reply cache, retries and token budget.
"""

from wikitune.augment.run import AugmentConfig, AugmentResult, run_augment

__all__ = ["AugmentConfig", "AugmentResult", "run_augment"]
