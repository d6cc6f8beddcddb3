"""The HAProxy configuration AST.

Nodes are frozen, slotted dataclasses with tuple children, so equality is structural and a
round trip can be compared node by node. Where a node came from a parsed file, ``src`` keeps
its position and original spelling; it is excluded from equality, so ``parse(a) == parse(b)``
compares meaning, not layout.

Argument values are stored *unquoted* (what HAProxy sees after quote removal). Spelling them
back is the printer's job (``compiler.quoting.quote_arg``), or the source's when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

# --- source information ------------------------------------------------------------------


class SourceWord(NamedTuple):
    """One word as written: its raw spelling and 1-based column.

    A named tuple rather than a dataclass: the parser makes one per word of every line, and
    a tuple is several times cheaper to create.
    """

    raw: str
    col: int


class Source(NamedTuple):
    """Where a node came from and how it was spelled, for located errors and lossless output.

    ``text`` is the whole physical line including its line ending (the ending is empty when
    the file ended without one). ``values`` are what HAProxy reads from the line's words and
    ``words`` their raw spellings with columns; ``comment`` is the raw trailing comment
    (starting at ``#``), if any. A named tuple for the same reason as ``SourceWord``: one per
    line.
    """

    line: int
    text: str
    indent: str = ""
    # The words as written, or None for a plain line (no quotes, escapes or comment), whose
    # words are its values: their columns are then found only when someone asks.
    spelled: tuple[SourceWord, ...] | None = None
    comment: str | None = None
    newline: str = "\n"
    values: tuple[str, ...] = ()

    @property
    def words(self) -> tuple[SourceWord, ...]:
        """The raw spelling and 1-based column of each word."""
        if self.spelled is not None:
            return self.spelled
        return plain_words(self.text, self.values, len(self.indent))


def plain_words(text: str, values: tuple[str, ...], start: int) -> tuple[SourceWord, ...]:
    """Columns of the words of a plain line, whose raw spellings are its values."""
    found: list[SourceWord] = []
    position = start
    for value in values:
        position = text.find(value, position)
        found.append(SourceWord(value, position + 1))
        position += len(value)
    return tuple(found)


# --- conditions (`if` / `unless`) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclRef:
    """A named ACL in a condition, optionally negated with ``!``."""

    name: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class AnonymousAcl:
    """An inline ACL in braces: ``{ criterion [flags] [values] }``."""

    words: tuple[str, ...]
    negated: bool = False


Term = AclRef | AnonymousAcl


@dataclass(frozen=True, slots=True)
class AllOf:
    """Terms joined by HAProxy's implicit AND."""

    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """``if``/``unless`` followed by alternatives joined with ``||`` or ``or``."""

    kind: Literal["if", "unless"]
    alternatives: tuple[AllOf, ...]

    @classmethod
    def when(cls, *acl_names: str) -> Condition:
        """``if a b c``: all named ACLs must match."""
        return cls("if", (AllOf(tuple([AclRef(name) for name in acl_names])),))


# --- statements --------------------------------------------------------------------------

Prefix = Literal["no", "default"]


@dataclass(frozen=True, slots=True)
class Statement:
    """Any keyword with arguments the AST does not model more precisely."""

    keyword: str
    args: tuple[str, ...] = ()
    prefix: Prefix | None = None
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Acl:
    """``acl <name> <criterion> [flags] [operator] [values...]``."""

    name: str
    criterion: str
    args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class UseBackend:
    """``use_backend <backend> [if|unless <condition>]``."""

    backend: str
    condition: Condition | None = None
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DefaultBackend:
    backend: str
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Bind:
    """``bind [<address>]:<port> [params...]``."""

    address: str
    params: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Mode:
    mode: str
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Balance:
    algorithm: str
    args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Option:
    """``[no|default] option <name> [args...]``."""

    name: str
    args: tuple[str, ...] = ()
    prefix: Prefix | None = None
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Timeout:
    """``timeout <event> <value>``."""

    event: str
    value: str
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Cookie:
    """Backend ``cookie <name> [params...]`` (sticky sessions)."""

    name: str
    params: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Server:
    """``server <name> <address> [params...]``."""

    name: str
    address: str
    params: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Log:
    """``log global`` or ``log <target> [len <n>] [format <f>] <facility> [levels...]``."""

    args: tuple[str, ...]
    prefix: Prefix | None = None
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Comment:
    """A full-line comment. ``text`` is everything after the ``#``."""

    text: str
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Blank:
    """A blank line (kept so that formatting and linting can see layout)."""

    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Directive:
    """A line-level directive: ``.if``, ``.elif``, ``.else``, ``.endif``, ``.diag``, ..."""

    name: str
    args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)


TypedStatement = (
    Acl
    | UseBackend
    | DefaultBackend
    | Bind
    | Mode
    | Balance
    | Option
    | Timeout
    | Cookie
    | Server
    | Log
)
Line = TypedStatement | Statement | Comment | Blank | Directive


# --- sections ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Global:
    body: tuple[Line, ...] = ()
    header_args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)

    keyword = "global"


@dataclass(frozen=True, slots=True)
class Defaults:
    """``defaults [<name>] [from <defaults>]``; the optional parts stay in ``header_args``."""

    body: tuple[Line, ...] = ()
    header_args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)

    keyword = "defaults"


@dataclass(frozen=True, slots=True)
class Frontend:
    name: str
    body: tuple[Line, ...] = ()
    header_args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)

    keyword = "frontend"


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    body: tuple[Line, ...] = ()
    header_args: tuple[str, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)

    keyword = "backend"


@dataclass(frozen=True, slots=True)
class GenericSection:
    """Any other section kind (``listen``, ``resolvers``, ``peers``, ``userlist``, ...)."""

    kind: str
    header_args: tuple[str, ...] = ()
    body: tuple[Line, ...] = ()
    src: Source | None = field(default=None, compare=False, repr=False)

    @property
    def keyword(self) -> str:
        return self.kind


Section = Global | Defaults | Frontend | Backend | GenericSection


@dataclass(frozen=True, slots=True)
class Config:
    """A whole file: lines before the first section, then the sections in order."""

    sections: tuple[Section, ...] = ()
    preamble: tuple[Line, ...] = ()


def section_header_words(section: Section) -> tuple[str, ...]:
    """The words of a section's header line, keyword first."""
    if isinstance(section, Frontend | Backend):
        return (section.keyword, section.name, *section.header_args)
    return (section.keyword, *section.header_args)


# --- map files (the bundle) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One line of an HAProxy map file: ``<key> <value>``.

    HAProxy reads the key up to the first blank and the value to the end of the line, with no
    quoting or escapes at all, so neither may contain what would end or split them (the
    printer refuses such values).
    """

    key: str
    value: str
    src: Source | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MapFile:
    """A map file the config loads with ``map(<name>)``; ``name`` is relative to the config's
    directory (``default-path config``)."""

    name: str
    entries: tuple[MapEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a compile produces: the config and the map files it refers to, as one unit."""

    config: Config
    maps: tuple[MapFile, ...] = ()
