"""``from workers.workflows import NonRetryableError``."""


class NonRetryableError(Exception):
    """Raise inside a step to fail it at once, without using the remaining retries."""

    def __init__(self, message: str = "", name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = name or "NonRetryableError"


__all__ = ["NonRetryableError"]
