"""User-facing errors.

Every error a user can cause (bad input, bad options, missing models) is raised as a
:class:`ThresherError` with a one-line message naming the file, line, row or key. The CLI
prints it as ``Error: <message>`` and exits with status 1, without a traceback.
"""


class ThresherError(Exception):
    """An error caused by the user's input, options or environment (one-line message).

    ``str()`` escapes line breaks and other control characters (a key or value quoted from the
    data may hold them), so the message is always one line.
    """

    def __str__(self) -> str:
        text = super().__str__()
        if text.isprintable():
            return text
        return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class InputError(ThresherError):
    """Malformed or invalid input data."""


class ConfigError(ThresherError):
    """Invalid configuration (CLI options, recipe or spec); the message lists every problem."""

    def __init__(self, problems: list[str] | str, where: str = ""):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        prefix = f"{where}: " if where else ""
        if len(self.problems) == 1:
            msg = prefix + self.problems[0]
        else:
            msg = prefix + f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(msg)


#: exit status of a command that stopped to wait for outside work (an OpenAI Batch job):
#: nothing failed; rerun the same command once the results are there (sysexits' EX_TEMPFAIL)
EXIT_WAITING = 75


class BatchPending(ThresherError):
    """Not a failure: the stage wrote its requests for an outside batch job and stops until
    the results exist. The CLI prints the message without ``Error:`` and exits with
    :data:`EXIT_WAITING`."""
