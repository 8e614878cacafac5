"""The interactive chat: a prompt, slash commands, Ctrl-C and Ctrl-D as people expect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ChatkeepError
from ..redact import redact
from .chat import ChatSession, MissingKey, _save_unsent, take_turn
from .errors import api_error_text, unexpected_text

__all__ = ["HELP", "handle_command", "run_repl"]

HELP = """Commands:
  /help           this list
  /new            start a new conversation
  /title [TEXT]   show or set the conversation's title
  /retry          answer the last message again (a new branch; the old reply stays)
  /undo           step back one turn (it stays in the store as a branch)
  /fork           continue in a copy of this conversation
  /attach PATH    attach a file (image, audio, PDF...) to your next message
  /id             show the conversation's id
  /exit           leave (Ctrl-D too)
Enter sends; Esc then Enter starts a new line. Ctrl-C stops a reply (what arrived is saved)
or clears the line."""


def _need_conversation(session: ChatSession) -> Any:
    if session.conversation is None:
        raise ChatkeepError("no conversation yet: say something first")
    return session.conversation


def _title(session: ChatSession, argument: str) -> None:
    conversation = _need_conversation(session)
    if argument:
        conversation.rename(argument)
    record = conversation.record
    session.out.line(f"Title: {record.title or f'(none yet: listed as {record.display_title!r})'}")


def _undo(session: ChatSession, argument: str) -> None:
    head = _need_conversation(session).undo()
    text = str(head.message.get("content") or "")[:60].replace("\n", " ") if head else ""
    session.out.line(f"Undone. The conversation now ends at: {head.role + ': ' + text if head else '(the start)'}")


def _fork(session: ChatSession, argument: str) -> None:
    forked = session.store.fork(_need_conversation(session).id, title=argument or None)
    session.switch(forked)
    session.out.line(f"Forked: now in {forked.id}")


def _attach(session: ChatSession, argument: str) -> None:
    from pathlib import Path

    from .attach import attachment_part

    path = Path(argument).expanduser()
    attachment_part(path)  # refused now, not with the message, if it cannot be attached
    session.attach.append(path)
    session.out.line(f"Attached {path.name}: it goes with your next message.")


def _new(session: ChatSession, argument: str) -> None:
    session.store.require("conversations")  # the tutorial's JSON file holds one
    session.switch(None)
    session.out.line("New conversation: it is saved with your first message.")


def _retry(session: ChatSession, argument: str) -> None:
    _need_conversation(session)
    _turn(session, None, retry=True)


def _id(session: ChatSession, argument: str) -> None:
    session.out.line(session.conversation.id if session.conversation else "(not saved yet)")


COMMANDS: dict[str, Callable[[ChatSession, str], None]] = {
    "/help": lambda s, a: s.out.line(HELP), "/new": _new, "/title": _title, "/retry": _retry,
    "/undo": _undo, "/fork": _fork, "/id": _id, "/attach": _attach,
}


def handle_command(session: ChatSession, line: str) -> bool:
    """Run one slash command; return False when the chat should end."""
    name, _, argument = line.strip().partition(" ")
    if name in ("/exit", "/quit"):
        return False
    command = COMMANDS.get(name)
    if command is None:
        session.out.line(f"Unknown command {name}: /help lists them.")
        return True
    try:
        command(session, argument.strip())
    except ChatkeepError as exc:
        say(session, f"chatkeep: {exc}")
    return True


def _head(session: ChatSession) -> str | None:
    """The open conversation's head, or None (also when the store cannot be read)."""
    try:
        return session.conversation.record.head_id if session.conversation else None
    except ChatkeepError:
        return None


def _turn(session: ChatSession, text: str | None, *, retry: bool = False) -> str:
    """A turn whose failures are reported in one line, leaving the chat running.

    Returns the text to offer at the next prompt: what the user typed, when the
    turn failed before it was saved (refused up front, or the store could not
    take it), so nothing typed is lost.
    """
    before = _head(session)
    try:
        take_turn(session, text, retry=retry)
    except KeyboardInterrupt:
        say(session, "[interrupted: the partial reply is saved]")
    except MissingKey as exc:
        if text is not None:
            _save_unsent(session, text, exc)
        say(session, f"chatkeep: {exc} (your message is saved; /retry once it is set)")
    except ChatkeepError as exc:
        if text and _head(session) == before:  # refused before the message was saved
            say(session, f"chatkeep: {exc} (your message is kept at the prompt)")
            return text
        say(session, f"chatkeep: {exc}")
    except Exception as exc:
        line = api_error_text(exc)
        if line is None:  # a bug: one line, and the chat goes on
            say(session, f"chatkeep: {unexpected_text(exc)}")
        else:
            say(session, f"chatkeep: {line} (your message is saved; /retry to send it again)")
    return ""


def say(session: ChatSession, line: str) -> None:
    """One line to the user: keys redacted, control characters shown rather than obeyed."""
    session.out.line(redact(line))


def _prompt_session() -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings

    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return PromptSession(key_bindings=keys)


def run_repl(session: ChatSession) -> None:
    """Read messages and commands until /exit or Ctrl-D."""
    prompt = _prompt_session()
    where = session.conversation.id if session.conversation else "a new conversation"
    session.out.line(f"chatkeep · {where} · {session.model} · /help for commands, Ctrl-D to leave", style="dim")
    kept = ""
    while True:
        try:
            line = prompt.prompt("> ", default=kept)
            kept = ""
        except KeyboardInterrupt:
            kept = ""  # Ctrl-C at the prompt clears the line, a kept message too
            continue
        except EOFError:
            break
        if not line.strip():
            continue
        if line.startswith("/"):
            if not handle_command(session, line):
                break
            continue
        kept = _turn(session, line)
