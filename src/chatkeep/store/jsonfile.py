"""The tutorial's file: one conversation kept as a plain JSON array of message dicts.

``open_store("conversation_history.json")`` reads what the tutorial's
``json.dump(messages, f, indent=2)`` wrote and writes the same bytes back, but
atomically: the new array goes to a temporary file in the same folder, is
fsynced, and replaces the old one with a rename, so a crash leaves either the
old file or the new one, never half of one.

The format holds messages only. A message's model, usage, status and other
bookkeeping are not kept, there is one branch (the array), and the head is
always the last message. Use a database store for the rest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConversationNotFound, FormatError, MessageError, MessageNotFound, StoreError
from ..messages import MessageDict, message_text, validate_message, validate_messages
from .base import HEAD, ConversationRecord, MessageKind, MessageStatus, StoredMessage, check_status
from .bulk import ImportConversation, ImportSummary
from .conversation import ConversationAccess
from .search import SearchHit, parse_query
from .files import ensure_private_dir

__all__ = ["JSONFileStore"]

_Signature = tuple[int, int, int]


class JSONFileStore(ConversationAccess):
    """A :class:`~chatkeep.store.Store` over one tutorial-format JSON file.

    The file's single conversation has the file's stem as its id
    (``conversation_history`` for ``conversation_history.json``). Message ids are
    positions in the array, starting at ``"1"``.
    """

    def __init__(self, path: str | Path) -> None:
        self.file = Path(path)
        self.url = str(self.file)
        self.conversation_id = self.file.stem
        self._cache: tuple[_Signature, list[MessageDict]] | None = None

    def __repr__(self) -> str:
        return f"JSONFileStore({str(self.file)!r})"

    def close(self) -> None:
        """Nothing stays open between calls; kept for the ``Store`` protocol."""
        self._cache = None

    def __enter__(self) -> JSONFileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the file ----------------------------------------------------------------

    def _signature(self) -> _Signature | None:
        try:
            st = self.file.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> list[MessageDict]:
        """Read and validate the whole file (a missing file is an empty conversation)."""
        signature = self._signature()
        if signature is None:
            return []
        if self._cache is not None and self._cache[0] == signature:
            return self._cache[1]
        try:
            text = self.file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(self.file)) from exc
        messages = _parse(text, str(self.file))
        self._cache = (signature, messages)
        return messages

    def _write(self, messages: list[MessageDict]) -> None:
        """Replace the file atomically with ``messages`` as the tutorial writes them."""
        ensure_private_dir(self.file.parent.resolve())
        existing = self._signature()
        mode = self.file.stat().st_mode & 0o777 if existing is not None else 0o600
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=f".{self.file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(messages, f, indent=2)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, self.file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.file.parent)
        signature = self._signature()
        self._cache = (signature, messages) if signature is not None else None

    # -- records -----------------------------------------------------------------

    def _check_id(self, conversation_id: str) -> None:
        if conversation_id != self.conversation_id:
            raise ConversationNotFound(conversation_id)

    def _record(self, messages: list[MessageDict]) -> ConversationRecord:
        st = self.file.stat() if self.file.exists() else None
        moment = datetime.fromtimestamp(st.st_mtime, timezone.utc) if st else datetime.now(timezone.utc)
        return ConversationRecord(
            id=self.conversation_id, title=None, created_at=moment, updated_at=moment,
            head_id=str(len(messages)) if messages else None, message_count=len(messages),
        )

    def _stored(self, messages: list[MessageDict], index: int) -> StoredMessage:
        moment = datetime.fromtimestamp(self.file.stat().st_mtime, timezone.utc)
        return StoredMessage(
            id=str(index + 1), conversation_id=self.conversation_id,
            parent_id=str(index) if index > 0 else None, message=messages[index], created_at=moment,
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
        if self.file.exists():
            raise StoreError(f"a conversation with id {self.conversation_id!r} already exists")
        self._write([])
        return self._record([])

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        self._check_id(conversation_id)
        return self._record(self.read())

    def list_conversations(
        self,
        *,
        limit: int | None = 50,
        offset: int = 0,
        title_contains: str | None = None,
        owner: str | None = None,
    ) -> list[ConversationRecord]:
        if title_contains or owner is not None or offset > 0 or limit == 0:
            return []
        return [self._record(self.read())]

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
        return self._record(self.read())

    def delete_conversation(self, conversation_id: str) -> None:
        """Empty the conversation by removing the file."""
        self._check_id(conversation_id)
        self.file.unlink(missing_ok=True)
        self._cache = None

    # -- messages -----------------------------------------------------------------

    def append(
        self,
        conversation_id: str,
        message: Mapping[str, Any],
        *,
        parent_id: str | None = HEAD,
        move_head: bool = True,
        kind: MessageKind = "chat",
        status: MessageStatus = "complete",
        model: str | None = None,
        usage: Mapping[str, Any] | None = None,
        latency_ms: float | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
        token_counts: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        """Append to the array and rewrite the file atomically.

        The bookkeeping arguments (model, usage, status, ...) are accepted and
        not kept: the tutorial's format has no place for them.
        """
        self._check_id(conversation_id)
        check_status(status)
        if kind != "chat":
            raise StoreError(f"{self.file}: the tutorial's JSON format keeps chat messages only")
        body = validate_message(message)
        messages = list(self.read())
        head = str(len(messages)) if messages else None
        if parent_id != HEAD and parent_id != head or not move_head:
            raise StoreError(f"{self.file}: the tutorial's JSON format has one branch; append at the end")
        messages.append(body)
        self._write(messages)
        return self._stored(messages, len(messages) - 1)

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
        messages = self.read()
        return self._stored(messages, self._index(message_id, messages))

    def path(
        self, conversation_id: str, *, last: int | None = None, head_id: str | None = None
    ) -> list[StoredMessage]:
        self._check_id(conversation_id)
        messages = self.read()
        end = len(messages) if head_id is None else self._index(head_id, messages) + 1
        start = 0 if last is None else max(0, end - max(last, 0))
        return [self._stored(messages, i) for i in range(start, end)]

    def find_messages(self, conversation_id: str, *, kind: MessageKind) -> list[StoredMessage]:
        """Only chat messages live in the tutorial's file."""
        self._check_id(conversation_id)
        messages = self.read()
        return [self._stored(messages, i) for i in range(len(messages))] if kind == "chat" else []

    def save_token_counts(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Accepted and dropped: the format has no place for counts."""

    def import_conversations(
        self, conversations: Iterable[ImportConversation], *, progress: Callable[[ImportSummary], None] | None = None
    ) -> ImportSummary:
        """Append one single-branch conversation's messages to the file, in one atomic write."""
        items = list(conversations)
        if len(items) != 1:
            raise StoreError(f"{self.file} holds one conversation; this import has {len(items)}")
        messages = list(self.read())
        previous = None
        for number, imported in enumerate(items[0].messages):
            if imported.parent_key != previous and number:
                raise StoreError(f"{self.file}: the tutorial's JSON format has one branch; this import has several")
            previous = imported.key
            messages.append(validate_message(imported.message, field=f"message {imported.key or number}"))
        self._write(messages)
        summary = ImportSummary(messages_added=len(items[0].messages), conversation_ids=[self.conversation_id],
                                conversations_updated=1)
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
        limit: int = 20,
        offset: int = 0,
    ) -> list[SearchHit]:
        """Messages containing every word of ``query`` (a linear scan: the file is one conversation).

        The file keeps no models, times or owners, so those filters match nothing.
        """
        if model is not None or since is not None or until is not None or owner is not None:
            return []
        terms = parse_query(query)
        words = [w.lower() for w in (*terms.required, *terms.prefixes)]
        if not words or conversation_id not in (None, self.conversation_id):
            return []
        messages = self.read()
        hits = []
        for index, message in enumerate(messages):
            text = message_text(message)
            if role is not None and message.get("role") != role:
                continue
            if all(w in text.lower() for w in words) and not any(x.lower() in text.lower() for x in terms.excluded):
                hits.append(SearchHit(self._stored(messages, index), None, text[:200], 0.0))
        return list(reversed(hits))[offset:offset + limit]

    def set_head(self, conversation_id: str, message_id: str | None) -> None:
        self._check_id(conversation_id)
        messages = self.read()
        if message_id is not None:
            self._index(message_id, messages)
        if message_id != (str(len(messages)) if messages else None):
            raise StoreError(
                f"{self.file}: the tutorial's JSON format keeps no branches, so its head "
                "cannot move without losing messages; use a database store"
            )

    def children(self, message_id: str) -> list[StoredMessage]:
        messages = self.read()
        index = self._index(message_id, messages)
        return [self._stored(messages, index + 1)] if index + 1 < len(messages) else []

    def count_conversations(self) -> int:
        return 1

    def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is not None:
            self._check_id(conversation_id)
        return len(self.read())


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
