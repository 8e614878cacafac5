"""Keeping local conversations in step with OpenAI's own (the Conversations API), both ways.

```python
from openai import OpenAI
from chatkeep import ResponsesChat, open_store
from chatkeep.remote import pull, push

store, client = open_store(), OpenAI()
pulled = pull(store, client, "conv_689667905b048191b4740501625afd940c7533ace33a2dab")
pushed = push(store, client, "support-42")      # a server conversation made from a local one
chat = ResponsesChat(store.conversation("support-42"), client, conversation=pushed.server_id)
chat.send("And now?")                           # the server keeps the context; every item is kept here too
```

OpenAI's conversations cannot be listed (there is no ``conversations.list``)
and stored responses expire: the local store is the index. A local
conversation remembers its server conversation in ``metadata["openai"]``
(see :mod:`chatkeep.remote.link`), and pulling or pushing again moves only
what is new. Both take the ``openai.OpenAI`` client to use; the SDK is
imported only when they call it.
"""

from __future__ import annotations

from .link import ServerLink, server_link
from .pull import PullResult, linked_conversation, pull
from .push import PushResult, push
from .server import ServerConversationNotFound

__all__ = ["PullResult", "PushResult", "ServerConversationNotFound", "ServerLink", "linked_conversation", "pull",
           "push", "server_link"]
