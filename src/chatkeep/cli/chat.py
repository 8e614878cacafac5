"""``chatkeep chat``: a chat that remembers, one-shot or interactive."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ChatkeepError, Unsupported
from ..store import AnyStore
from ..store.conversation import Conversation
from .attach import with_attachments
from .common import db_option, open_db
from .errors import EXIT_API, EXIT_INTERRUPTED, api_error_text, fail, handle_errors
from .output import Output, terminal_text

__all__ = ["ChatSession", "chat"]

DEFAULT_MODEL = "gpt-4o"


class ChatSession:
    """The CLI's state: the store, the open conversation (made on the first message), and the settings."""

    def __init__(self, store: AnyStore, out: Output, *, model: str | None, system: str | None, title: str | None,
                 base_url: str | None, stream: bool, context: str, context_window: int | None,
                 encoding: str | None = None, default_model: str = DEFAULT_MODEL,
                 title_model: str | None = None) -> None:
        self.store, self.out = store, out
        self.model_option, self.system, self.title = model, system, title
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.stream, self.context, self.context_window = stream, context, context_window
        self.encoding = encoding
        #: The model of a new conversation when --model is not given (the settings' ``model``).
        self.default_model = default_model
        #: The model that titles an untitled conversation after its first reply (``None``: none).
        self.title_model = title_model
        self._retired: list[Any] = []
        #: Files to attach to the next message (--attach, /attach).
        self.attach: list[Path] = []
        self.conversation: Conversation | None = None
        self._chat: Any = None

    @property
    def model(self) -> str:
        if self.model_option:
            return self.model_option
        if self.conversation is not None:
            return str(self.conversation.record.metadata.get("model") or self.default_model)
        return self.default_model

    def open(self, conversation_id: str | None, latest: bool) -> None:
        """Open a conversation by id (made if missing), or the most recently updated one.

        A store that holds one conversation (the tutorial's JSON file) opens that one.
        """
        if conversation_id is None and not latest and not holds_many_conversations(self.store):
            conversation_id = self.store.list_conversations(limit=1)[0].id
        if latest:
            found = self.store.list_conversations(limit=1, archived=False)  # an archived one is put away
            if not found:
                raise ChatkeepError("no conversation to continue yet: start one with chatkeep chat")
            conversation_id = found[0].id
        if conversation_id is not None:
            self.switch(self.store.conversation(conversation_id, create=True, title=self.title))

    def switch(self, conversation: Conversation | None) -> None:
        if self._chat is not None:
            self._retired.append(self._chat)  # closed with the session: its title may still be on its way
        self.conversation, self._chat = conversation, None

    def close(self) -> None:
        """Wait for titles still being written (each chat waits at most its title timeout)."""
        chats, self._retired = [*self._retired, self._chat], []
        for chat in chats:
            if chat is not None:
                chat.close()

    def ensure_conversation(self) -> Conversation:
        if self.conversation is None:
            conversation = self.store.new_conversation(title=self.title, metadata={"model": self.model})
            if self.system:
                conversation.append({"role": "system", "content": self.system})
            self.switch(conversation)
        assert self.conversation is not None
        return self.conversation

    def chat(self) -> Any:
        """The library ``Chat`` for the open conversation (the openai SDK is imported here, not before)."""
        if self._chat is None:
            from openai import OpenAI

            from .. import Chat, KeepAll, Summarize, TrimToBudget

            key = os.environ.get("OPENAI_API_KEY")
            if not key and self.base_url is None:
                raise MissingKey()
            client = OpenAI(api_key=key or "no-key", base_url=self.base_url)
            policy = {"all": KeepAll, "trim": TrimToBudget, "summarize": Summarize}[self.context]()
            self._chat = Chat(self.ensure_conversation(), client, model=self.model, context=policy,
                              context_window=self.context_window, encoding=self.encoding, title_model=self.title_model)
        return self._chat


class MissingKey(ChatkeepError):
    """No API key for api.openai.com."""

    def __init__(self) -> None:
        super().__init__("no API key: set OPENAI_API_KEY (or --base-url for a server that needs none)")


def _show_reply(session: ChatSession, stream: Any) -> None:
    """Print a reply as it streams: rendered Markdown on a terminal, raw text when piped."""
    out = session.out
    if not out.fancy:
        for delta in stream:
            sys.stdout.write(terminal_text(delta))
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    from rich.live import Live
    from rich.markdown import Markdown

    text = ""
    with Live(Markdown(""), console=out.console, refresh_per_second=12, vertical_overflow="visible") as live:
        for delta in stream:
            text += terminal_text(delta)
            live.update(Markdown(text))


def holds_many_conversations(store: AnyStore) -> bool:
    """Whether the store can hold more than one conversation (the tutorial's JSON file cannot)."""
    try:
        store.require("conversations")
    except Unsupported:
        return False
    return True


def take_turn(session: ChatSession, text: str | None, *, retry: bool = False) -> None:
    """One turn: save the message (with files attached), stream or wait for the reply, print it. Errors propagate."""
    chat = session.chat()
    message = None if text is None else with_attachments(text, session.attach)
    session.attach = []
    if not session.stream:
        reply = chat.retry() if retry else chat.send(message)
        session.out.markdown(str(reply))
    else:
        stream = chat.retry_stream() if retry else chat.stream(message)
        with stream:
            _show_reply(session, stream)
        reply = stream.reply
    if reply is not None and reply.branched:
        click.echo(
            f"chatkeep: the conversation moved on while this reply was written (another chat, or a switch), so it "
            f"is kept on a branch of its own: chatkeep branches {reply.message.conversation_id}", err=True,
        )


def _save_unsent(session: ChatSession, text: str, problem: ChatkeepError) -> None:
    """Keep the user's message even when no call could be made (no API key)."""
    conversation = session.ensure_conversation()
    stored = conversation.append({"role": "user", "content": text})
    session.store.update_message(stored.id, status="error", error=str(problem))


def one_shot(session: ChatSession, text: str) -> None:
    try:
        take_turn(session, text)
    except MissingKey as exc:
        _save_unsent(session, text, exc)
        fail(f"{exc} (your message is saved in conversation {session.conversation and session.conversation.id})",
             EXIT_API)
    except KeyboardInterrupt:
        click.echo("\n[interrupted: the partial reply is saved]", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        line = api_error_text(exc)
        if line is None:
            raise  # handle_errors turns it into one line
        where = session.conversation.id if session.conversation else "?"
        fail(f"{line} (your message is saved in conversation {where}; chatkeep chat --cid {where} then /retry)",
             EXIT_API)


@click.command()
@click.option("-m", "--message", metavar="TEXT", help="Send one message, print the reply and exit (stdin works too).")
@click.option("--model", envvar="CHATKEEP_MODEL", show_envvar=True,
              help=f"The model (default: the conversation's, else the 'model' setting, else {DEFAULT_MODEL}).")
@click.option("-s", "--system", metavar="TEXT", help="A system prompt for a new conversation.")
@click.option("-c", "--continue", "latest", is_flag=True,
              help="Continue the most recently updated conversation (not an archived one).")
@click.option("--cid", "conversation_id", metavar="ID", help="Open this conversation (made if it does not exist).")
@click.option("-t", "--title", help="Title of a new conversation.")
@click.option("--base-url", metavar="URL",
              help="An OpenAI-compatible server (default: $OPENAI_BASE_URL, the 'base_url' setting, then OpenAI).")
@click.option("-a", "--attach", "attach", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Attach a file to the message (an image, WAV/MP3 audio, a PDF...); repeat for several.")
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming them.")
@click.option("--context", type=click.Choice(["all", "trim", "summarize"]),
              help="What to send when the conversation outgrows the context window (default: the 'context' "
                   "setting, else all).")
@click.option("--context-window", type=int, metavar="TOKENS",
              help="The model's context window (default: what the server says, else chatkeep's tables).")
@click.option("--encoding", metavar="NAME|PATH",
              help="How to count tokens: o200k_base, cl100k_base, a model's tokenizer.json, or 'server' "
                   "(its /tokenize). Default: the model's own, else o200k_base calibrated against the server.")
@click.option("--auto-title/--no-auto-title", default=None,
              help="Have a model title an untitled conversation after its first reply, in the background "
                   "(default: the 'auto_title' setting, else off).")
@click.option("--title-model", metavar="MODEL", help="The model that writes titles (default: the 'title_model' "
                                                     "setting, else gpt-4o-mini).")
@db_option
@handle_errors
def chat(message: str | None, model: str | None, system: str | None, latest: bool, conversation_id: str | None,
         title: str | None, base_url: str | None, no_stream: bool, context: str | None, context_window: int | None,
         encoding: str | None, attach: tuple[Path, ...], auto_title: bool | None, title_model: str | None,
         db: str | None) -> None:
    """Chat with a model; every turn is saved the moment it happens.

    Interactive on a terminal (type /help for commands); with -m TEXT, or text
    on stdin, it sends one message, prints the reply and exits.
    """
    from ..settings import load_settings

    settings = load_settings()  # flags (and environment variables) first, then the file, then the defaults
    out = Output()
    titled = auto_title if auto_title is not None else settings.get("auto_title")
    session = ChatSession(open_db(db), out, model=model, system=system, title=title,
                          base_url=base_url or settings.get("base_url"),  # $OPENAI_BASE_URL, then the file
                          stream=not no_stream, context=context or settings.get("context"),
                          context_window=context_window, encoding=encoding, default_model=settings.get("model"),
                          title_model=(title_model or settings.get("title_model")) if titled else None)
    try:
        _run(session, conversation_id, latest, attach, message)
    finally:
        session.close()


def _run(session: ChatSession, conversation_id: str | None, latest: bool, attach: tuple[Path, ...],
         message: str | None) -> None:
    session.open(conversation_id, latest)
    session.attach = list(attach)
    if message is None and not sys.stdin.isatty():
        message = sys.stdin.read()
    if message is not None:
        if not message.strip():
            fail("the message is empty")
        one_shot(session, message.rstrip("\n"))
        return
    from .repl import run_repl

    run_repl(session)
