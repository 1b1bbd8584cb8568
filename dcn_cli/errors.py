"""The one exception type for mistakes a user can fix."""


class DcnError(Exception):
    """A user's mistake: bad path, malformed row, unknown option value, wrong checkpoint.

    The message is shown as is, after ``Error: ``, on one line of stderr; say
    what is wrong and where (file, line, column) so the user can act on it.
    """


def first_line(err: BaseException) -> str:
    """The first line of another library's error message (its name, when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# tf.data runs a reader inside a ``py_func`` and re-raises what it raised as a
# TensorFlow error whose message is a whole traceback. Readers record their
# DcnError here first, so that whoever catches the TensorFlow error can show
# the user's mistake instead (:func:`dcn_cli.train.pipeline.source_errors`, the CLI).
_raised_in_pipeline: list[DcnError] = []


def in_pipeline(err: DcnError) -> DcnError:
    """Record ``err``, raised inside an input pipeline; return it, to be raised."""
    _raised_in_pipeline.append(err)
    return err


def from_pipeline() -> DcnError | None:
    """The first DcnError raised inside an input pipeline since the last call, if any."""
    first = _raised_in_pipeline[0] if _raised_in_pipeline else None
    _raised_in_pipeline.clear()
    return first
