"""Errors that mean "the input was wrong": the CLI prints them as one line and exits 2, the UI shows them."""


class UserError(ValueError):
    """Bad input from the user: a file, a value, a setting. The message is one line naming what and where."""


def require(ok: bool, message: str, error: type[UserError] = UserError) -> None:
    """Raise ``error(message)`` unless ``ok``: the one-line guard every validator uses."""
    if not ok:
        raise error(message)
