"""The tutorial's file: one conversation kept as a plain JSON array of message dicts.

``open_store("conversation_history.json")`` reads what the tutorial's
``json.dump(messages, f, indent=2)`` wrote and writes the same bytes back, but
safely:

- Atomically: the new array goes to a temporary file in the same folder, is
  fsynced, and replaces the old one with a rename, so a crash leaves either the
  old file or the new one, never half of one.
- One writer at a time: every change reads, modifies and rewrites the file
  under an exclusive lock on ``.conversation_history.json.lock`` beside it (the
  one file chatkeep leaves next to yours), so writers in many processes and
  threads lose nothing. Reading takes no lock: a rename is atomic.
- A chat turn holds that lock from saving the user's message to saving the
  reply (``lease``), so the reply lands right after its prompt. A second turn
  on the same file waits for the first, and is refused if it waits too long.

The format holds messages only: one conversation, one branch (the array), the
head always at its end. A message's model, usage and status are not kept.
Whatever needs more (a second conversation, a branch from an edit, a
regenerated reply, a fork, undo) is refused up front with ``Unsupported``,
before anything changes or any model call is paid for. Use a database store
for the rest.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import (
    ConversationNotFound,
    FormatError,
    MessageError,
    MessageNotFound,
    StoreError,
    Unsupported,
)
from ..messages import MessageDict, message_text, validate_message, validate_messages
from .base import (
    ANY,
    HEAD,
    PARENT,
    ConversationRecord,
    Draft,
    MessageKind,
    MessageStatus,
    StoredMessage,
    check_status,
)
from .bulk import ImportConversation, ImportSummary
from .calibrations import Calibration, observe
from .conversation import ConversationAccess
from .files import ensure_private_dir
from .heads import expected_head, head_moves, resolve_parent
from .organize import FIRST_PROMPT_CHARS
from .pinned import PINNED_ROLES
from .protocol import Feature
from .search import SearchHit, SearchOrder, newest_first, parse_query

__all__ = ["JSONFileStore"]

_Signature = tuple[int, int, int, int]

#: How long a change waits for another writer's lock, and a turn for another turn.
WRITE_TIMEOUT = 60.0
TURN_TIMEOUT = 10.0


class JSONFileStore(ConversationAccess):
    """A :class:`~chatkeep.store.Store` over one tutorial-format JSON file.

    The file's single conversation has the file's stem as its id
    (``conversation_history`` for ``conversation_history.json``). Message ids are
    positions in the array, starting at ``"1"``. ``turn_timeout`` is how long a
    chat turn waits for another turn on the same file before it is refused.
    """

    def __init__(
        self, path: str | Path, *, write_timeout: float = WRITE_TIMEOUT, turn_timeout: float = TURN_TIMEOUT,
        _held: bool = False,
    ) -> None:
        self.file = Path(path)
        self.url = str(self.file)
        self.conversation_id = self.file.stem

        self.write_timeout, self.turn_timeout = write_timeout, turn_timeout
        # A leased view: its lease already holds the lock for it.
        self._held = _held
        self._cache: tuple[_Signature, list[MessageDict]] | None = None
        self._calibrations: dict[tuple[str, str], Calibration] = {}

    def __repr__(self) -> str:
        return f"JSONFileStore({str(self.file)!r})"

    def close(self) -> None:
        """Nothing stays open between calls; kept for the ``Store`` protocol."""
        self._cache = None

    def __enter__(self) -> JSONFileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the format holds -----------------------------------------------------

    def _holds(self, what: str) -> Unsupported:
        return Unsupported(
            f"{self.file.name} holds one conversation as a plain list, so it cannot {what}; "
            "use a .db store for branches (chatkeep import it into one)"
        )

    def require(self, feature: Feature) -> None:
        """Refuse what the tutorial's array has no room for: it holds chat messages, one after another."""
        raise self._holds({
            "branches": "keep a second branch", "conversations": "hold a second conversation",
            "summaries": "keep a summary beside the messages", "response_items": "keep Responses API items",
            "titles": "keep a title", "tags": "keep tags, a pin or an archived mark",
        }[feature])

    # -- the file ----------------------------------------------------------------

    def _signature(self) -> _Signature | None:
        try:
            st = self.file.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def target(self) -> Path:
        """The file written: the JSON file itself, or where its symlink points (the link stays a link)."""
        return Path(os.path.realpath(self.file))

    @property
    def lock_file(self) -> Path:
        """The one file chatkeep keeps beside the JSON: the writers' lock (beside the target of a symlink)."""
        target = self.target
        return target.with_name(f".{target.name}.lock")

    def _acquire(self, timeout: float, refusal: StoreError) -> Any:
        """Take the file's lock, waiting ``timeout`` seconds at most, else raise ``refusal``."""
        from filelock import FileLock, Timeout

        try:
            ensure_private_dir(self.target.parent)
            # A new lock object (and file descriptor) per holder: flock then keeps out
            # other threads of this process as surely as other processes.
            lock = FileLock(self.lock_file, timeout=timeout, mode=0o600, thread_local=False, poll_interval=0.002)
            lock.acquire()
        except Timeout as exc:
            raise refusal from exc
        except OSError as exc:
            raise StoreError(f"{self.file}: cannot take the lock beside it ({exc.strerror}); nothing was changed"
                             ) from exc
        return lock

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the file's lock for one read-modify-write (a leased view already holds it)."""
        if self._held:
            yield
            return
        lock = self._acquire(self.write_timeout, StoreError(
            f"{self.file}: another writer has held it for {self.write_timeout:g} s; nothing was changed"
        ))
        try:
            yield
        finally:
            lock.release()

    def _messages(self) -> list[MessageDict]:
        """The file's messages, validated (a missing file is an empty conversation); never hand these out."""
        signature = self._signature()
        if signature is None:
            return []
        if self._cache is not None and self._cache[0] == signature:
            return self._cache[1]
        try:
            text = self.file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(self.file)) from exc
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"{self.file}: cannot be read ({exc.strerror})") from exc
        messages = _parse(text, str(self.file))
        self._cache = (signature, messages)
        return messages

    def read(self) -> list[MessageDict]:
        """Read and validate the whole file: new dicts, which the caller may change freely."""
        return copy.deepcopy(self._messages())

    def _check_writable(self) -> None:
        """Refuse, before anything changes, to replace a file its mode keeps from being written."""
        try:
            mode = self.target.stat().st_mode
        except FileNotFoundError:
            return
        if not mode & stat.S_IWUSR:
            raise StoreError(f"{self.file} is read-only (mode {stat.S_IMODE(mode):04o}), so nothing was changed; "
                             "make it writable (chmod u+w) to add to it")

    def _write(self, messages: list[MessageDict]) -> None:
        """Replace the file atomically with ``messages`` as the tutorial writes them (under the lock).

        The new file keeps the old one's mode; through a symlink, the link's
        target is replaced, so the link still points at the conversation.
        """
        target = self.target
        self._check_writable()
        try:
            ensure_private_dir(target.parent)
            mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise StoreError(f"{self.file}: cannot write here ({exc.strerror}); nothing was changed") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(messages, f, indent=2)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(f"{self.file}: could not be written ({exc.strerror}); it was left as it was") from exc
            raise
        _fsync_dir(target.parent)
        signature = self._signature()
        self._cache = (signature, messages) if signature is not None else None

    def _fresh(self) -> list[MessageDict]:
        """The file as it is on disk now (under the lock: the cache may be a rename behind)."""
        self._cache = None
        return list(self._messages())

    # -- records -----------------------------------------------------------------

    def _check_id(self, conversation_id: str) -> None:
        if conversation_id != self.conversation_id:
            raise ConversationNotFound(conversation_id)

    def _record(self, messages: list[MessageDict]) -> ConversationRecord:
        st = self.file.stat() if self.file.exists() else None
        moment = datetime.fromtimestamp(st.st_mtime, timezone.utc) if st else datetime.now(timezone.utc)
        first = next((text for m in messages if m.get("role") == "user" and (text := message_text(m))), None)
        return ConversationRecord(
            id=self.conversation_id, title=None, created_at=moment, updated_at=moment,
            head_id=_tip(messages), message_count=len(messages), first_prompt=first and first[:FIRST_PROMPT_CHARS],
        )

    def _stored(self, messages: list[MessageDict], index: int, *, head_moved: bool | None = None) -> StoredMessage:
        try:
            moment = datetime.fromtimestamp(self.file.stat().st_mtime, timezone.utc)
        except FileNotFoundError:
            moment = datetime.now(timezone.utc)
        return StoredMessage(
            id=str(index + 1), conversation_id=self.conversation_id,
            parent_id=str(index) if index > 0 else None, message=copy.deepcopy(messages[index]),
            created_at=moment, head_moved=head_moved,
        )

    def _index(self, message_id: str, messages: list[MessageDict]) -> int:
        if not message_id.isdigit() or not 1 <= int(message_id) <= len(messages):
            raise MessageNotFound(message_id, self.conversation_id)
        return int(message_id) - 1

    # -- conversations ------------------------------------------------------------

    def create_conversation(
        self,
        conversation_id: str | None = None,
        *,
        title: str | None = None,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        """Create the file as ``[]``; its one conversation is named after the file."""
        if conversation_id not in (None, self.conversation_id):
            raise StoreError(
                f"{self.file} holds one conversation, {self.conversation_id!r}; "
                "use a database store for more"
            )
        if title is not None or owner is not None or metadata:
            raise StoreError(f"{self.file}: the tutorial's JSON format keeps messages only")
        with self._exclusive():
            if self.file.exists():
                raise StoreError(f"a conversation with id {self.conversation_id!r} already exists")
            self._write([])
        return self._record([])

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        self._check_id(conversation_id)
        return self._record(self._messages())

    def list_conversations(
        self,
        *,
        limit: int | None = 50,
        offset: int = 0,
        title_contains: str | None = None,
        owner: str | None = None,
        matching: str | None = None,
        tags: Sequence[str] = (),
        pinned: bool | None = None,
        archived: bool | None = None,
        since: datetime | None = None,
        model: str | None = None,
        pinned_first: bool = False,
    ) -> list[ConversationRecord]:
        """The file's one conversation, unless a filter rules it out (it has no title, owner, tags, pin or models)."""
        if title_contains or owner is not None or tags or pinned or archived or model is not None:
            return []
        if offset > 0 or limit == 0:
            return []
        record = self._record(self._messages())
        if (since is not None and record.updated_at < since) or (matching and not self.search(matching, limit=1)):
            return []
        return [record]

    def add_tags(self, conversation_id: str, tags: Iterable[str] | str) -> ConversationRecord:
        """Refused: the file keeps messages only."""
        self._check_id(conversation_id)
        raise self._holds("keep tags")

    def remove_tags(self, conversation_id: str, tags: Iterable[str] | str) -> ConversationRecord:
        """Refused: the file keeps messages only."""
        self._check_id(conversation_id)
        raise self._holds("keep tags")

    def tag_counts(self) -> dict[str, int]:
        """The file keeps no tags."""
        return {}

    def set_pinned(self, conversation_id: str, pinned: bool = True) -> ConversationRecord:
        """Refused: the file keeps messages only."""
        self._check_id(conversation_id)
        raise self._holds("keep a pin")

    def set_archived(self, conversation_id: str, archived: bool = True) -> ConversationRecord:
        """Refused: the file keeps messages only."""
        self._check_id(conversation_id)
        raise self._holds("be archived")

    def suggest_title(self, conversation_id: str, title: str) -> bool:
        """Refused: the file keeps messages only."""
        self._check_id(conversation_id)
        raise self._holds("keep a title")

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        self._check_id(conversation_id)
        if title is not None or metadata is not None:
            raise StoreError(f"{self.file}: the tutorial's JSON format keeps no title or metadata")
        return self._record(self._messages())

    def delete_conversation(self, conversation_id: str) -> None:
        """Empty the conversation by removing the file."""
        self._check_id(conversation_id)
        with self._exclusive():
            self.file.unlink(missing_ok=True)
            self._cache = None

    # -- messages -----------------------------------------------------------------

    def append_many(
        self,
        conversation_id: str,
        drafts: Sequence[Draft],
        *,
        parent_id: str | None = HEAD,
        expect_head: str | None = PARENT,
        move_head: bool = True,
    ) -> list[StoredMessage]:
        """Append several messages in one rewrite; they must go at the end, where the head is."""
        self._check_id(conversation_id)
        bodies = []
        for draft in drafts:
            check_status(draft.status)
            if draft.kind != "chat":
                raise self._holds(f"keep {draft.kind.replace('_', ' ')}s (chat messages only)")
            bodies.append(validate_message(draft.message))
        if not bodies:
            return []
        with self._exclusive():
            messages = self._fresh()
            tip = _tip(messages)
            parent = resolve_parent(parent_id, tip)
            if parent != tip or not head_moves(tip, expected_head(expect_head, parent), move_head=move_head):
                raise self._holds("keep a message off its end (that needs a branch)")
            messages += bodies
            self._write(messages)
        first = len(messages) - len(bodies)
        return [self._stored(messages, i, head_moved=True) for i in range(first, len(messages))]

    def edit(self, conversation_id: str, message_id: str, message: Mapping[str, Any]) -> StoredMessage:
        """Refused: an edit keeps the original on a branch of its own."""
        self._check_id(conversation_id)
        raise self._holds("keep an edited message beside the original (that needs a branch)")

    def undo(self, conversation_id: str) -> StoredMessage | None:
        """Refused: undo keeps the undone turn on a branch of its own."""
        self._check_id(conversation_id)
        raise self._holds("undo a turn and keep it (that needs a branch)")

    def pop(self, conversation_id: str) -> StoredMessage | None:
        """Refused: the popped message would be kept on a branch of its own."""
        self._check_id(conversation_id)
        raise self._holds("move its head back and keep what follows (that needs a branch)")

    def fork_conversation(
        self, conversation_id: str, *, at: str | None = None, new_id: str | None = None, title: str | None = None
    ) -> ConversationRecord:
        """Refused: a fork is a second conversation."""
        self._check_id(conversation_id)
        raise self._holds("hold a fork (a second conversation)")

    def lease(self, conversation_id: str) -> _FileLease:
        """Hold the file for one chat turn, so its reply lands right after its prompt.

        Waits ``turn_timeout`` seconds for another turn to end, then refuses
        with ``Unsupported`` before anything is saved or sent.
        """
        self._check_id(conversation_id)
        lock = self._acquire(self.turn_timeout, Unsupported(
            f"{self.file.name} is in use by another chat turn (waited {self.turn_timeout:g} s): it holds one "
            "conversation as a plain list, so turns on it take turns; try again when that one ends, or use a "
            ".db store for chats that run at once"
        ))
        view = JSONFileStore(self.file, write_timeout=self.write_timeout, turn_timeout=self.turn_timeout, _held=True)
        return _FileLease(view, lock)

    def update_message(
        self,
        message_id: str,
        *,
        status: MessageStatus | None = None,
        error: str | None = None,
        token_counts: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        """Accept and drop bookkeeping changes: the format has no place for them."""
        if status is not None:
            check_status(status)
        return self.get_message(message_id)

    def get_message(self, message_id: str) -> StoredMessage:
        messages = self._messages()
        return self._stored(messages, self._index(message_id, messages))

    def path(
        self, conversation_id: str, *, last: int | None = None, head_id: str | None = None
    ) -> list[StoredMessage]:
        self._check_id(conversation_id)
        messages = self._messages()
        end = len(messages) if head_id is None else self._index(head_id, messages) + 1
        start = 0 if last is None else max(0, end - max(last, 0))
        return [self._stored(messages, i) for i in range(start, end)]

    def pinned_path(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """The system and developer messages before ``message_id`` (the file is in memory: a scan)."""
        self._check_id(conversation_id)
        messages = self._messages()
        end = self._index(message_id, messages)
        return [self._stored(messages, i) for i in range(end) if messages[i].get("role") in PINNED_ROLES]

    def branch_bodies(self, conversation_id: str) -> list[MessageDict]:
        """The whole array, as new dicts."""
        self._check_id(conversation_id)
        return self.read()

    def find_messages(self, conversation_id: str, *, kind: MessageKind) -> list[StoredMessage]:
        """Only chat messages live in the tutorial's file."""
        self._check_id(conversation_id)
        messages = self._messages()
        return [self._stored(messages, i) for i in range(len(messages))] if kind == "chat" else []

    def save_token_counts(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Accepted and dropped: the format has no place for counts."""

    def import_conversations(
        self, conversations: Iterable[ImportConversation], *, progress: Callable[[ImportSummary], None] | None = None
    ) -> ImportSummary:
        """Add one single-branch conversation to the file, in one atomic write: only what it does not hold yet.

        The file holds one list, so an import must continue it: when the file's
        messages start the imported conversation, the rest is appended (importing
        the same file twice adds nothing); anything else is refused.
        """
        items = list(conversations)
        if len(items) != 1:
            raise self._holds(f"take {len(items)} conversations at once")
        imported = _single_branch(items[0], self._holds)
        with self._exclusive():
            messages = self._fresh()
            same = _common_prefix(messages, imported)
            if same < min(len(messages), len(imported)):
                raise self._holds(
                    f"take this import: its message {same + 1} differs from the file's (a second branch)"
                )
            new = imported[len(messages):]
            if new:
                self._write(messages + new)
        summary = ImportSummary(messages_added=len(new), messages_skipped=len(imported) - len(new),
                                conversation_ids=[self.conversation_id], conversations_updated=1 if new else 0)
        if progress is not None:
            progress(summary)
        return summary

    def search(
        self,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        owner: str | None = None,
        tags: Sequence[str] = (),
        limit: int = 20,
        offset: int = 0,
        order: SearchOrder = "relevance",
    ) -> list[SearchHit]:
        """Messages containing every word of ``query`` (a linear scan: the file is one conversation).

        The file keeps no models, times or owners, so those filters match nothing. Nothing is
        ranked: either ``order`` gives the latest first.
        """
        newest_first(order)  # checked as the databases check it
        if model is not None or since is not None or until is not None or owner is not None or tags:
            return []
        terms = parse_query(query)
        words = [w.lower() for w in (*terms.required, *terms.prefixes)]
        if not words or conversation_id not in (None, self.conversation_id):
            return []
        messages = self._messages()
        hits = []
        for index, message in enumerate(messages):
            text = message_text(message)
            if role is not None and message.get("role") != role:
                continue
            if all(w in text.lower() for w in words) and not any(x.lower() in text.lower() for x in terms.excluded):
                hits.append(SearchHit(self._stored(messages, index), None, text[:200], 0.0))
        return list(reversed(hits))[offset:offset + limit]

    def usage_by_model(self, conversation_id: str | None = None) -> dict[str, dict[str, int]]:
        """The file keeps no models or usage: every reply counts under ``unknown``, with no tokens."""
        if conversation_id is not None:
            self._check_id(conversation_id)
        replies = sum(1 for m in self._messages() if m.get("role") == "assistant")
        return {"unknown": {"replies": replies, "prompt_tokens": 0, "completion_tokens": 0}} if replies else {}

    def set_head(self, conversation_id: str, message_id: str | None, *, expect_head: str | None = ANY) -> None:
        """Only a no-op is possible: the head is always the array's end."""
        self._check_id(conversation_id)
        messages = self._messages()
        if message_id is not None:
            self._index(message_id, messages)
        if message_id != _tip(messages):
            raise self._holds("move its head without losing messages (that needs a branch)")

    def children(self, message_id: str) -> list[StoredMessage]:
        messages = self._messages()
        index = self._index(message_id, messages)
        return [self._stored(messages, index + 1)] if index + 1 < len(messages) else []

    def count_conversations(self) -> int:
        return 1

    def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is not None:
            self._check_id(conversation_id)
        return len(self._messages())

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The tutorial's file keeps no lookup keys."""
        return {}

    def attachment_stats(self) -> dict[str, int]:
        """The tutorial's file keeps payloads inline, in the messages: none is kept apart."""
        return {"attachments": 0, "attachment_bytes": 0}

    def calibration(self, server: str, model: str) -> Calibration:
        """Calibrations live only as long as this store object: the tutorial's format has no place for them."""
        return self._calibrations.get((server, model), Calibration(server, model))

    def record_calibration(
        self, server: str, model: str, counted: int, reported: int, *, window: int | None = None
    ) -> Calibration:
        updated = observe(self.calibration(server, model), counted, reported, window=window)
        self._calibrations[(server, model)] = updated
        return updated

    def check_integrity(self) -> list[str]:
        """The file must parse as a JSON array of valid messages."""
        self._cache = None
        try:
            self._messages()
        except FormatError as exc:
            return [str(exc)]
        return []


class _FileLease:
    """A chat turn's hold on the file: ``store`` writes under the held lock."""

    def __init__(self, store: JSONFileStore, lock: Any) -> None:
        self.store = store
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _tip(messages: Sequence[Any]) -> str | None:
    return str(len(messages)) if messages else None


def _single_branch(item: ImportConversation, holds: Callable[[str], Unsupported]) -> list[MessageDict]:
    bodies, previous = [], None
    for number, imported in enumerate(item.messages):
        if number and imported.parent_key != previous:
            raise holds("take an import with several branches")
        if imported.kind != "chat":
            raise holds(f"keep {imported.kind.replace('_', ' ')}s (chat messages only)")
        previous = imported.key
        bodies.append(validate_message(imported.message, field=f"message {imported.key or number}"))
    return bodies


def _common_prefix(first: Sequence[MessageDict], second: Sequence[MessageDict]) -> int:
    count = 0
    for a, b in zip(first, second):
        if a != b:
            break
        count += 1
    return count


def _parse(text: str, file: str) -> list[MessageDict]:
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno) from exc
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON array of messages, got {type(data).__name__}", file=file)
    try:
        return validate_messages(data)
    except MessageError as exc:
        raise FormatError(str(exc), file=file) from exc


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
