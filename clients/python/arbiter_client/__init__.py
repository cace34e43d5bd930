"""Client for the arbiter daemon (`arbiter serve`): score responses with its reward model and
choose among them with its policies, with typed errors and retries on overload."""

from .client import ArbiterClient, AsyncArbiterClient, RewardModel
from .errors import (
    ArbiterError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServerError,
    UnavailableError,
)

__all__ = [
    "ArbiterClient",
    "AsyncArbiterClient",
    "RewardModel",
    "ArbiterError",
    "AuthenticationError",
    "BadRequestError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ServerError",
    "UnavailableError",
]
