"""The one exception type the CLI turns into a one-line error and a non-zero exit status."""


class WikituneError(Exception):
    """Bad input or an impossible request; the message says what is wrong and what to do."""
