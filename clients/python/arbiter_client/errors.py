"""Typed errors from the daemon's error shape, `{"error": message, "type": kind}`."""


class ArbiterError(Exception):
    """An error answer from the daemon (or no answer: `status` 0)."""

    def __init__(self, status, type_, message):
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message


class BadRequestError(ArbiterError):
    """400: the request is wrong (the message names the field or parameter)."""


class AuthenticationError(ArbiterError):
    """401: missing or wrong API key."""


class NotFoundError(ArbiterError):
    """404: unknown route, policy or rule."""


class PayloadTooLargeError(ArbiterError):
    """413: body, tokens or candidates over a limit."""


class OverloadedError(ArbiterError):
    """429: the daemon is at capacity; retried with backoff before it is raised."""


class UnavailableError(ArbiterError):
    """503: unhealthy engine, busy plugin pool, too many connections or shutting down;
    retried with backoff before it is raised."""


class ServerError(ArbiterError):
    """Any other 5xx (engine failure 500, a plugin that broke its limits 502)."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: OverloadedError,
    503: UnavailableError,
}


def error_for(status, type_, message):
    """The typed error for an HTTP status."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ArbiterError)
    return cls(status, type_, message)
