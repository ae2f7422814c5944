"""Domain errors raised by services; the API turns each into its HTTP status (dataengine.api)."""


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, **detail):
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(DomainError):
    status, code = 400, "invalid"


class NotAllowed(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    """A stale edit or a lost lease: nothing was changed, the client must reload."""

    status, code = 409, "conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"
