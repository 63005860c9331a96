"""QA sets: mined from a corpus (`qa build`), loaded from JAQKET/JSQuAD/JCommonsenseQA, or built in.

    from wikitune.qa import load_qa
    questions = load_qa(["qa/demo/test.jsonl", "builtin:seed", "jaqket:../shared/data/qa-jaqket/jaqket_aio01_train_derived.jsonl"])

One question is a `wikitune.formats.QAItem` (the QA file format is the contract's).
"""

from wikitune.qa.loaders import QASet, load_qa, load_qa_sets, load_qa_spec

__all__ = ["QASet", "load_qa", "load_qa_sets", "load_qa_spec"]
