"""Find the real cause inside dlt's wrapping, and say it in one line.

dlt wraps a failing step as ``PipelineStepFailed: Pipeline execution failed at stage load when
processing package … with exception:`` followed by the cause on later lines; the first line
alone names nothing. These helpers walk the ``__cause__``/``__context__`` chain instead.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, TypeVar

E = TypeVar("E", bound=BaseException)
MAX_CAUSE_CHARS = 400


class ConfigError(ValueError):
    """Configuration is missing or invalid; the message names the key and where to set it."""


_OPTION = re.compile(r"\{(\w+)\}")
_TEMPLATE = "options_template"


def naming_options(kind: Callable[[str], E], template: str) -> E:
    """``kind(message)`` for a message naming run options as ``{shard}``.

    The library cannot know how its caller spells an option: its text says ``shard``, as an
    orchestrator passes it (``up_jobs(shard="0/3")``); the CLI spells it ``--shard`` through
    :func:`options_spelt`, so an Airflow user never reads a flag they cannot pass.
    """
    error = kind(_OPTION.sub(r"\1", template))
    setattr(error, _TEMPLATE, template)
    return error


def options_template(error: BaseException) -> str | None:
    """The message with its ``{option}`` placeholders, when :func:`naming_options` made the error."""
    template = getattr(error, _TEMPLATE, None)
    return template if isinstance(template, str) else None


def options_spelt(error: BaseException, spell: Callable[[str], str]) -> str:
    """The error's first line, the run options it names spelt by ``spell`` (the CLI: as its flags)."""
    template = options_template(error)
    if template is None:
        return first_line(error)
    text = _OPTION.sub(lambda match: spell(match.group(1)), template)
    return next((line.strip() for line in text.splitlines() if line.strip()), first_line(error))


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, outermost first (cycles cut)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def innermost(error: BaseException, kind: type[E]) -> E | None:
    """The outermost error of ``kind`` in the chain (dlt wraps our own errors and signals)."""
    for link in chain(error):
        if isinstance(link, kind):
            return link
    return None


def message_line(error: BaseException) -> str:
    """The first non-empty line of the error's message; "" when it says nothing."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def first_line(error: BaseException) -> str:
    """The first line of the message, or the error's type when the message is empty."""
    return message_line(error) or type(error).__name__


def one_line_cause(error: BaseException) -> str:
    """``Type: message`` of the innermost error that says something, prefixed by dlt's step if any."""
    links = list(chain(error))
    steps = (getattr(link, "step", None) for link in links)  # dlt's PipelineStepFailed names its step
    step = next((name for name in steps if isinstance(name, str)), None)
    cause = next((link for link in reversed(links) if message_line(link)), links[-1])
    text = f"{type(cause).__name__}: {message_line(cause)}" if message_line(cause) else type(cause).__name__
    text = text[:MAX_CAUSE_CHARS]
    return f"{step} step failed: {text}" if step else text
