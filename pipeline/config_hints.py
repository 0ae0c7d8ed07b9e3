"""Unknown configuration keys named in the configuration error they explain.

A typo such as ``base_ur`` leaves ``base_url`` unset, and the run stops with "base_url is not
set" before its summary (where unknown keys are listed as warnings) is printed. So unknown keys
are read first, and a configuration error raised while they are known carries them along.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from dlt.common.configuration.exceptions import ConfigurationException

from pipeline.errors import naming_options, options_template
from pipeline.job_ids import ConfigProblem
from pipeline.settings import ConfigError


def with_hints(message: str, unknown: Sequence[ConfigProblem]) -> str:
    """One line: the error, then each unknown key with where it is and the closest known key."""
    if not unknown:
        return message
    return message.rstrip(". ") + "; " + "; ".join(str(problem) for problem in unknown)


@contextmanager
def hinted(unknown: Sequence[ConfigProblem]) -> Iterator[None]:
    """Re-raise a configuration error (ours or dlt's) as a ConfigError naming the unknown keys."""
    try:
        yield
    except (ConfigError, ConfigurationException) as error:
        if not unknown:
            raise
        template = options_template(error)  # keep the options it names for the CLI to spell as flags
        lines = (template or str(error)).strip().splitlines()
        message = with_hints(lines[0] if lines else type(error).__name__, unknown)
        raise (naming_options(ConfigError, message) if template else ConfigError(message)) from error
