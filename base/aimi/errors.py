"""The two failures every layer may raise - a wrong setup (nothing runs) and a case that cannot finish - and the
exit status every aimi command ends with.

They live apart from the module layer so that DICOM, weights and manifest code can raise them without importing it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

#: 0 everything done (skipped series are not failures); 1 a case or item failed, the others still ran;
#: 2 a usage or configuration error (ConfigError): nothing ran.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ConfigError(ValueError):
    """A workflow or a setting is wrong; the message names the file, the key and the valid choices."""


class FetchError(RuntimeError):
    """Weights could not be obtained or are not what their publisher states (size, digest, archive layout)."""


class CaseError(RuntimeError):
    """A case cannot be completed; the message names the series and what to do about it."""


#: A source location in a native library's message (SimpleITK: "/tmp/SimpleITK-build/.../itkImageBase.hxx:77:").
BUILD_PATH = re.compile(r"/\S*/(?=[\w.-]+\.(?:hxx|cxx|h|cpp|c):\d+)")


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, cut to `limit`: a reason for a report, never a traceback or a dump. Where
    the first line only says where (SimpleITK's "Exception thrown in ...: <file>:<line>:"), the next one, which says
    what, is kept too; build paths are cut to the file name."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{type(error).__name__}: {BUILD_PATH.sub('', text)}"[:limit]


#: A quoted value in an exception's text: pydicom and highdicom quote the header value they could not use.
QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


def without_values(error: BaseException, limit: int = 200) -> str:
    """`one_line`, with quoted values and unprintable characters taken out: what a library says about a header
    value (a name, raw bytes) must not carry the value into a report or a log."""
    text = QUOTED.sub("'...'", one_line(error, limit=1000))
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)[:limit]


def os_reason(error: OSError) -> str:
    """The operating system's words for an OSError ("File too large", "No space left on device"), also when a
    library re-raised it with its own text around them."""
    if error.strerror:
        return error.strerror
    found = re.search(r"\[Errno \d+\] ([^\n\]]+)", str(error))
    return found.group(1).strip() if found else one_line(error)


def exit_status(command: Callable[[], int], *, usage: tuple[type[Exception], ...],
                failure: tuple[type[Exception], ...] = ()) -> int:
    """Run a command line's work; a usage error exits 2 and a failure 1, each as one line on stderr, no traceback."""
    try:
        return command()
    except usage as error:
        print(f"aimi: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except failure as error:
        print(f"aimi: error: {error}", file=sys.stderr)
        return EXIT_FAILED
