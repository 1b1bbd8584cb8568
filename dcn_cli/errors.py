"""The one exception type for mistakes a user can fix."""


class DcnError(Exception):
    """A user's mistake: bad path, malformed row, unknown option value, wrong checkpoint.

    The message is shown as is, after ``Error: ``, on one line of stderr; say
    what is wrong and where (file, line, column) so the user can act on it.
    """
