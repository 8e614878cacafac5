"""Importers and exporters: chat apps' exports, other tools' databases, fine-tuning JSONL, the tutorial's file.

```python
from chatkeep import open_store
from chatkeep.formats import read_conversations, write_conversations

store = open_store()
warnings: list[str] = []  # without it, a record that cannot be imported stops the import
summary = store.import_conversations(read_conversations("chatgpt-export.zip", warnings=warnings))
write_conversations(store, summary.conversation_ids, "markdown", "export.md")
```

Imports stream: a 200 MB ChatGPT export is read one conversation at a time,
and one 200 MB conversation a node at a time (past a megabyte its nodes and
messages wait in temporary files, not in memory), and
``store.import_conversations`` writes them all in one transaction, so a
failure anywhere leaves the store as it was.

Importing the same file twice adds nothing. Every conversation and message
carries a source key that does not depend on where the file lies or when it
is read:

============  ================================================  ===============================
format        conversation key                                  message key
============  ================================================  ===============================
chatgpt       ``chatgpt:<conversation id>``                     the node id
claude        ``claude:<uuid>``                                 the message uuid
openwebui     ``openwebui:<chat id>``                           the message id
librechat     ``librechat:<conversationId>``                    the messageId
chatbotui     ``chatbotui:<id>``                                hash of the path up to it
llm           ``llm:<conversation_id>``                         ``<response id>:<part>``
llm-db        the same, or ``llm:thread:<thread id>``           the same, or the message hash
deepseek      ``deepseek:<chat id>``                            the message_id
grok          ``grok:<conversation_id>``                        the response_id
aistudio      ``aistudio:<hash of the opening>``                hash of the path up to it
agents-db     ``agents:<session_id>:<hash of its first item>``  ``<row id>:<hash>``
langchain-db  ``langchain:<session_id>:<hash of its first>``    ``<row id>:<hash>``
jsonl         ``jsonl:<hash of the record>``                    its position
sharegpt      ``sharegpt:<hash of the record>``                 its position
messages      ``messages:<hash of the opening messages>``       hash of the path up to it
============  ================================================  ===============================

A reply that the source keeps as one message but the API needs as several
(text, tool calls, their results) has its last piece keyed by the source's id
and the pieces before it ``<id>:<n>``. docs/import.md says what each format
keeps and drops.

So a later ChatGPT export adds only new turns, a grown tutorial file adds
only the turns appended since, and an edited one adds a branch.
"""

from __future__ import annotations

from .detect import DATABASE_FORMATS, IMPORT_FORMATS, detect_format
from .export import EXPORT_FORMATS, write_conversations
from .read import read_conversations

__all__ = ["DATABASE_FORMATS", "EXPORT_FORMATS", "IMPORT_FORMATS", "detect_format", "read_conversations",
           "write_conversations"]
