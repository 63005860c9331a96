"""Everything wikitune knows about gpt-oss: model loading (and the tiny model), the harmony format,
generation with the loop guard, the OpenAI-compatible server and adapter merging."""
