"""The analytics service's refusals, each with a stable code."""

from weika_kit.errors import InvalidArgument


class InvalidWindow(InvalidArgument):
    code = "invalid_window"


class MalformedEvent(InvalidArgument):
    """An event that cannot become a fact; the consumer dead-letters it rather than guess."""

    code = "malformed_event"
