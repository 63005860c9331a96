"""Japanese text utilities: answer normalisation, bracket-less forms, tokenisation for retrieval."""
