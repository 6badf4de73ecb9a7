"""The sandbox reply templates render in: Jinja2's immutable sandbox, with limits on time,
output size and everything that can build something huge from a short template.

A person typing a template is trusted with wording, not with the process.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Sequence
from typing import Any

import jinja2.exceptions as jinja_errors
import jinja2.filters as jinja_filters
from jinja2 import Environment, StrictUndefined, Template, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Guards against a template that would stall the worker or fill memory.
MAX_OUTPUT = 100_000
_MAX_BITS = 4096
# What one operation may build on the way to the output (a `replace` over a long
# message, say): a few times the output cap, so no step allocates more than a few MB.
_MAX_WORK = 4 * MAX_OUTPUT
# A reply template renders in milliseconds; one that runs this long is looping.
RENDER_SECONDS = 0.5


class RenderTimeout(BaseException):
    """Raised into the rendering thread at the deadline. A BaseException, so Jinja2's own
    `except Exception` handlers cannot swallow it."""


class RenderDeadline:
    """Stop a render that runs past `seconds`: nested loops over `range(100000)` are
    legal one by one and take hours together, and nothing in Jinja2 counts iterations.

    A timer raises `RenderTimeout` inside the rendering thread (CPython checks for it
    between bytecodes, and rendering is Python code). The lock makes "fired" and
    "finished" exclusive, and `stop` clears an exception that fired but was not yet
    raised, so it can never surface after the render in unrelated code.
    """

    def __init__(self, seconds: float) -> None:
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._running = True
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._running:
                self.fired = True
                _set_async_exc(self._thread, RenderTimeout)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            if self.fired:
                _set_async_exc(self._thread, None)
        self._timer.cancel()


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )


class _BoundedConcat(CodeGenerator):
    """`~` compiles to a plain join that no sandbox hook sees: `{% set ns.s = ns.s ~ ns.s %}`
    in a loop, or a macro passing `s ~ s` to itself, doubles a string forty times. Route
    every concatenation through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


def _too_big(what: str) -> jinja_errors.SecurityError:
    return jinja_errors.SecurityError(f"{what} too large")


def _check_length(value: Any, what: str = "text") -> Any:
    if hasattr(value, "__len__") and not isinstance(value, dict) and len(value) > MAX_OUTPUT:
        raise _too_big(what)
    return value


def _check_count(*numbers: Any) -> None:
    """Widths, paddings and repeat counts: none needs more than an email's length."""
    for number in numbers:
        if _integers(number) and abs(number) > MAX_OUTPUT:
            raise _too_big("width or count")


def _check_work(pieces: int, piece: int) -> None:
    """What an expanding operation would build: `pieces` copies of `piece` characters."""
    if pieces * piece > _MAX_WORK:
        raise _too_big("result")


def _check_format(fmt: str, args: Sequence[Any]) -> None:
    # A width or precision in the format itself (`%999999999s`, `{:>999999999}`) or one
    # taken from an argument (`%*s`, `{:{}}`) allocates before any length check can run.
    if _HUGE_WIDTH.search(fmt):
        raise _too_big("format width")
    if ("*" in fmt or _NESTED_FIELD.search(fmt)) and any(_integers(a) and abs(a) > MAX_OUTPUT for a in args):
        raise _too_big("format width")


_HUGE_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*:[^{}]*?)\d{6,}")
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")


def _expanding_str_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of one of str's methods that can build a huge string from small input;
    returns the arguments to call it with (an iterable given to `join` is read once)."""
    name, text = method.__name__, method.__self__
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_count(*values)
    elif name == "expandtabs":
        _check_count(*values)
        _check_work(text.count("\t") + 1, max([v for v in values if _integers(v)] or [8]))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_work(text.count(args[0]) if args[0] else len(text) + 1, len(args[1]))
    elif name == "join" and args:
        items = list(args[0])
        _check_work(len(items), len(text))
        _check_work(1, sum(len(str(i)) for i in items))
        return (items,)
    elif name in ("format", "format_map"):
        _check_format(text, [*values, *(args[0].values() if name == "format_map" and args else [])])
    return args


class ReplySandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox, immutable (no `list.append`/`extend` to grow a list in a loop),
    plus limits on everything that can build something huge from a short template:
    operators, `~`, str's padding/replacing/joining/formatting methods and the filters
    that do the same. The output cap and the deadline in `render_bounded` catch the rest.
    """

    # Intercepting an operator also stops Jinja2 from folding it at compile time,
    # where `{{ 2 ** 10 ** 9 }}` would hang before any check could run.
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedConcat

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # lipsum(10**6) writes a million paragraphs; no reply needs placeholder Latin.
        del self.globals["lipsum"]
        self.filters.update(_BOUNDED_FILTERS)

    def bounded(self, value: Any) -> Any:
        return _check_length(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if _integers(left, right):
            # Size of the result in bits; no email needs a number longer than a few lines.
            bits = (
                left.bit_length() * abs(right) if operator == "**" else left.bit_length() + right.bit_length()
            )
            if operator in ("*", "**") and bits > _MAX_BITS:
                raise jinja_errors.SecurityError("number too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if hasattr(seq, "__len__") and _integers(times) and len(seq) * times > MAX_OUTPUT:
                    raise jinja_errors.SecurityError("repetition too large")
        elif operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            if len(left) + len(right) > MAX_OUTPUT:
                raise _too_big("text")
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right if isinstance(right, tuple) else [right])
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        if isinstance(getattr(method, "__self__", None), str) and getattr(method, "__name__", "") in (
            _EXPANDING_STR_METHODS
        ):
            args = _expanding_str_call(method, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


_EXPANDING_STR_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "format", "format_map"}
)


def _bounded_center(value: Any, width: int = 80) -> str:
    _check_count(width)
    return jinja_filters.do_center(value, width)


def _bounded_indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _check_count(width)
    lines = str(value).count("\n") + 1
    _check_work(lines, len(width) if isinstance(width, str) else int(width))
    return jinja_filters.do_indent(value, width, first, blank)


def _bounded_wordwrap(
    environment: Environment,
    value: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    _check_work(len(str(value)) // max(int(width), 1) + 1, len(wrapstring or "\n"))
    return jinja_filters.do_wordwrap(
        environment, value, width, break_long_words, wrapstring, break_on_hyphens
    )


def _bounded_replace(eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text = str(value), str(old)
    _check_work(text.count(old_text) if old_text else len(text) + 1, len(str(new)))
    return jinja_filters.do_replace(eval_ctx, value, old, new, count)


def _bounded_join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_work(len(items), len(str(d)))
    return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value), [*args, *kwargs.values()])
    return jinja_filters.do_format(value, *args, **kwargs)


def _bounded_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _check_count(linecount)
    return jinja_filters.do_batch(value, linecount, fill_with)


def _bounded_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_count(slices)
    return jinja_filters.sync_do_slice(value, slices, fill_with)


# Jinja2 passes the environment / eval context to these by their markers, as to the originals.
_bounded_wordwrap = pass_environment(_bounded_wordwrap)
_bounded_replace = pass_eval_context(_bounded_replace)
_bounded_join = pass_eval_context(_bounded_join)
_BOUNDED_FILTERS: dict[str, Any] = {
    "center": _bounded_center,
    "indent": _bounded_indent,
    "wordwrap": _bounded_wordwrap,
    "replace": _bounded_replace,
    "join": _bounded_join,
    "format": _bounded_format,
    "batch": _bounded_batch,
    "slice": _bounded_slice,
}


def _integers(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def reply_environment(*, autoescape: bool) -> ReplySandbox:
    return ReplySandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        # Block tags on their own line leave no blank line behind in a plain-text email.
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class OutputTooLong(Exception):
    """The render passed MAX_OUTPUT characters."""


def render_bounded(compiled: Template, variables: dict[str, Any]) -> str:
    """Render within RENDER_SECONDS and MAX_OUTPUT; raises RenderTimeout or OutputTooLong."""
    deadline = RenderDeadline(RENDER_SECONDS)
    try:
        return _collect_output(compiled, variables)
    finally:
        deadline.stop()


def _collect_output(compiled: Template, variables: dict[str, Any]) -> str:
    # Piece by piece, so a loop printing 100,000 characters 100,000 times stops at the
    # cap instead of holding gigabytes until the final join.
    pieces: list[str] = []
    size = 0
    for piece in compiled.generate(variables):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise OutputTooLong
        pieces.append(piece)
    return "".join(pieces)
