"""``SessionRegistry``: the sessions the magics know, by id, and the current one."""

from __future__ import annotations

from collections.abc import Iterator

from IPython.core.error import UsageError

from ._notebook_session import NotebookSession


class SessionRegistry:
    """The sessions of this kernel's magics, by id in the order they were added, and the current
    one: the latest started, replayed or resumed, which a command without a session means."""

    def __init__(self) -> None:
        self._entries: dict[str, NotebookSession] = {}
        self._current: NotebookSession | None = None

    @property
    def current(self) -> NotebookSession | None:
        """The session a command without a session name means, if there is one yet."""
        return self._current

    def add(self, entry: NotebookSession) -> NotebookSession:
        """Keep ``entry`` and make it the current session."""
        self._entries[entry.session.id] = entry
        self._current = entry
        return entry

    def get(self, session_id: str) -> NotebookSession | None:
        """The session with exactly this id (a front end's message names it in full)."""
        return self._entries.get(session_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def __iter__(self) -> Iterator[NotebookSession]:
        return iter(list(self._entries.values()))

    def lookup(self, name: str | None) -> NotebookSession:
        """The session a command names: the current one for ``None``, else the one whose id starts
        with ``name``; a ``UsageError`` says what to do when there is none."""
        if name is None:
            if self._current is None:
                raise UsageError('No RLM session yet: start one with %rlm "question" ctx')
            return self._current
        matches = [e for sid, e in self._entries.items() if sid.startswith(name)]
        if len(matches) != 1:
            raise UsageError(f"No session {name!r} in this kernel; `%rlm list` shows them")
        return matches[0]

    def refuse_while_running(self) -> None:
        """Refuse a new session while one runs: both would run code in the one namespace."""
        running = [e.session.id for e in self._entries.values() if e.session.state == "running"]
        if running:
            raise UsageError(
                f"%rlm: session {running[0]} is running; `%rlm pause` or `%rlm stop` it first "
                "(or, if its steps stopped coming, `%rlm resume` runs its waiting step)"
            )

    def listing(self) -> str:
        """``%rlm list``: one line per session, the current one marked ``*``."""
        if not self._entries:
            return "No RLM sessions in this kernel yet."
        lines = []
        for sid, entry in self._entries.items():
            mark = "*" if entry is self._current else " "
            s = entry.session
            lines.append(f"{mark} {sid}  {s.state:<7} {s.iteration:>3} it  {s.question[:60]}")
        return "\n".join(lines)
