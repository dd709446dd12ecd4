"""Exceptions of the formats package.

Parsers and the deframer never raise on input bytes: bad input becomes a
flagged record. These errors are for definitions (formats, templates, options)
that a person wrote and must fix.
"""

from __future__ import annotations

__all__ = ["FormatDefinitionError", "SlsDecodeError", "TemplateError"]


class FormatDefinitionError(ValueError):
    """A streamlog format, parser option or framing option is not valid."""


class TemplateError(ValueError):
    """An rsyslog template cannot be read or does not describe a streamlog line.

    The message names the template and what is wrong with it.
    """


class SlsDecodeError(ValueError):
    """Bytes are not a valid SLS LogGroup protobuf."""
