"""``from workers.workflows import NonRetryableError`` (and the errors a workflow can catch)."""


class NonRetryableError(Exception):
    """Raise inside a step to fail it at once, without using the remaining retries.

    ``name`` is what ``status()["error"]["name"]`` reports if ``run`` does not catch it.
    """

    def __init__(self, message: str = "", name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = name or "NonRetryableError"


class WorkflowTimeoutError(TimeoutError):
    """A step attempt ran past its ``timeout``, or ``wait_for_event`` got no event in time."""


class NonDeterminismError(RuntimeError):
    """A replay asked for steps the stored history cannot explain (the code changed)."""


class WorkflowStepError(Exception):
    """A failed step replayed from history whose exception class edgelet cannot rebuild.

    ``name`` and ``message`` are those of the original error.
    """

    def __init__(self, message: str = "", name: str = "Error") -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.error_name = name


__all__ = ["NonDeterminismError", "NonRetryableError", "WorkflowStepError", "WorkflowTimeoutError"]
