"""HTML renderings shared by the inline driver, the panels and their untrusted-notebook fallbacks.

Everything the model or a sub-model wrote is escaped; styles are inline, so the blocks look the same in
JupyterLab, an untrusted notebook, GitHub and nbconvert.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

from IPython.core import display as _display
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer


@functools.cache
def _highlighter() -> tuple[PythonLexer, HtmlFormatter]:
    # Built on first use: building the formatter resolves its style (about 24 ms), which the RLM
    # kernel would otherwise pay at start-up.
    return PythonLexer(), HtmlFormatter(noclasses=True, nowrap=True, style="default")


_FENCE = re.compile(r"```[a-zA-Z]*[ \t]*\r?\n.*?```", re.DOTALL)

PREVIEW_CHARS = 600
MONO = "font-family: var(--jp-code-font-family, monospace); font-size: 12px"


class Markup(str):
    """An HTML block that also knows how it reads as plain text."""

    text: str

    def __new__(cls, markup: str, text: str) -> Markup:
        made = super().__new__(cls, markup)
        made.text = text
        return made


class HTML(_display.HTML):
    """``IPython.display.HTML`` with a readable ``text/plain`` twin, for terminal IPython and logs."""

    def __init__(self, data: str) -> None:
        super().__init__(data)
        self._text = data.text if isinstance(data, Markup) else html.unescape(_TAG.sub("", data))

    def __repr__(self) -> str:
        return self._text


_TAG = re.compile(r"<[^>]+>")


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def code_html(code: str) -> str:
    return str(highlight(code, *_highlighter())).rstrip("\n")


def long_text(text: str, *, limit: int = PREVIEW_CHARS, color: str = "inherit") -> str:
    """A <pre> of the first ``limit`` characters, the rest behind a "show all" expander."""
    style = f"white-space: pre-wrap; margin: 2px 0; color: {color}; {MONO}"
    if len(text) <= limit:
        return f'<pre style="{style}">{esc(text)}</pre>'
    return (
        f'<pre style="{style}">{esc(text[:limit])}…</pre>'
        f"<details><summary>show all {len(text):,} characters</summary>"
        f'<pre style="{style}">{esc(text)}</pre></details>'
    )


def prose_of(response: str) -> str:
    """The model's words around its code blocks (the code itself is shown as the cell)."""
    return _FENCE.sub("", response).strip()


def iteration_header(label: str, code: str, prose: str) -> Markup:
    reasoning = (
        "<details><summary style='color:#666'>model's notes</summary>"
        f"{long_text(prose, color='#555')}</details>"
        if prose
        else ""
    )
    markup = (
        '<div style="border-left: 3px solid #7b61ff; padding: 2px 8px; margin: 6px 0 2px 0">'
        f'<div style="color:#7b61ff; {MONO}">In [{esc(label)}]:</div>'
        f'<pre style="margin: 2px 0; white-space: pre-wrap; {MONO}">{code_html(code) if code else "<i>(no code)</i>"}</pre>'
        f"{reasoning}</div>"
    )
    notes = f"\n(model's notes) {prose}" if prose else ""
    return Markup(markup, f"In [{label}]:\n{code or '(no code)'}{notes}")


def notice(text: str, *, color: str = "#666") -> Markup:
    return Markup(
        f'<div style="color:{color}; {MONO}; margin: 2px 0 2px 11px">{esc(text)}</div>', text
    )


def error_block(text: str) -> Markup:
    return Markup(
        f'<div style="margin: 2px 0 2px 11px">{long_text(text, limit=4_000, color="#c0392b")}</div>',
        text,
    )


def answer_block(answer: str | None, reason: str, message: str) -> Markup:
    title = "Answer" if reason in ("final", "baseline") else f"Ended: {reason}"
    body = long_text(answer, limit=4_000) if answer is not None else ""
    markup = (
        '<div style="border-left: 3px solid #2e7d32; padding: 4px 8px; margin: 8px 0">'
        f'<b style="color:#2e7d32">{esc(title)}</b>'
        f'<div style="color:#666; font-size: 12px">{esc(message)}</div>{body}</div>'
    )
    return Markup(markup, "\n".join(x for x in (f"{title} ({message})", answer) if x))


def subcall_title(record: dict[str, Any]) -> str:
    usage = record.get("usage") or {}
    tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
    batch = record.get("batch")
    kind = record["kind"]
    name = f"{kind} {batch['index'] + 1}/{batch['size']}" if batch else kind
    parts = [name, record["model"]]
    if record.get("cached"):
        parts.append("cached")
    calls = sum(len(turn.get("calls", ())) for turn in record.get("tool_turns") or ())
    if calls:
        parts.append(f"{calls} tool call{'' if calls == 1 else 's'}")
    parts += [f"{tokens:,} tok", f"{record.get('latency', 0.0):.1f} s"]
    if record.get("error"):
        parts.append("error")
    return " · ".join(parts)


def tool_calls_body(record: dict[str, Any]) -> str:
    """A sub-call's tool calls (``sub_tools=``), turn by turn: name and arguments, then the result,
    or the error the sub-model read instead, and how long the tool took."""
    parts: list[str] = []
    for number, turn in enumerate(record.get("tool_turns") or (), start=1):
        for call in turn.get("calls", ()):
            head = f"turn {number} · {call['name']}({call['arguments']}) · {call['duration']:.2f} s"
            parts.append(f"<div style='color:#666; {MONO}'>{esc(head)}</div>")
            if call.get("error") is not None:
                parts.append(long_text(f"Error: {call['error']}", color="#c0392b"))
            else:
                parts.append(long_text(str(call.get("result") or "")))
    if record.get("tool_limit"):
        parts.append(
            "<div style='color:#b26a00'>the tool calls were cut at RLM.sub_tool_turns; the "
            "sub-model answered without further tools</div>"
        )
    if not parts:
        return ""
    return "<div style='color:#666'>tool calls</div>" + "".join(parts)


def subcall_body(record: dict[str, Any]) -> str:
    parts = [
        "<div style='color:#666'>prompt</div>",
        long_text(str(record["prompt"])),
        tool_calls_body(record),
    ]
    if record.get("error"):
        parts += [
            "<div style='color:#c0392b'>error</div>",
            long_text(record["error"], color="#c0392b"),
        ]
    else:
        parts += ["<div style='color:#666'>response</div>", long_text(str(record["response"]))]
    return "".join(parts)


def subcalls_fallback(records: list[dict[str, Any]], pending: int = 0) -> str:
    """Sub-calls as nested <details>: what an untrusted notebook or GitHub shows instead of widgets."""
    items = []
    for record in records:
        color = "#c0392b" if record.get("error") else "inherit"
        child = record.get("child")
        nested = f"<div style='margin-left:12px'>{child_fallback(child)}</div>" if child else ""
        items.append(
            f"<details><summary style='color:{color}; {MONO}'>{esc(subcall_title(record))}</summary>"
            f"<div style='margin-left:12px'>{subcall_body(record)}{nested}</div></details>"
        )
    more = f"<div style='color:#666'>{pending} in flight…</div>" if pending else ""
    return f"<div style='margin: 2px 0 2px 11px'>{''.join(items)}{more}</div>"


def child_fallback(child: dict[str, Any]) -> str:
    """A child RLM's iterations, compactly, inside its rlm_query entry."""
    blocks = []
    for record in child.get("records", []):
        if record.get("type") != "iteration":
            continue
        blocks.append(
            iteration_header(f"child {record['iteration']}", record["code"], "")
            + long_text(record.get("output", ""))
            + (subcalls_fallback(record.get("subcalls", [])) if record.get("subcalls") else "")
        )
    return "".join(blocks)
