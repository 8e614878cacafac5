"""A writer for the crash tests: appends and chat turns, logging every write that returned.

Usage: python crash_writer.py STORE LOG SEED [BASE_URL]

Each line of LOG is ``message_id<TAB>sha256(message JSON)``, written with one
O_APPEND write after the store call returned, so a line in the log means the
store promised to keep that message.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys

from chatkeep import open_store


def digest(message: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()


def main() -> None:
    target, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base_url = sys.argv[4] if len(sys.argv) > 4 else None
    rng = random.Random(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = open_store(target)
    conversation = store.conversation("crash" if not target.endswith(".json") else store.conversation_id, create=True)
    chat = None
    if base_url is not None:
        from openai import OpenAI

        from chatkeep import Chat
        from chatkeep.context import get_encoding

        chat = Chat(conversation, OpenAI(base_url=base_url, api_key="sk-test", max_retries=0), model="gpt-4o")
        get_encoding("o200k_base")  # loaded before "ready", so the kills land among turns, not in the loading

    def logged(stored: object) -> None:
        os.write(log, f"{stored.id}\t{digest(stored.message)}\n".encode())  # type: ignore[attr-defined]

    os.write(log, b"ready\n")
    for i in range(100_000):
        kind = rng.random()
        if chat is None or kind < 0.6:
            logged(conversation.append({"role": "user", "content": f"append {seed}-{i} " + "x" * rng.randint(0, 2000)}))
        elif kind < 0.8:
            reply = chat.send(f"turn {seed}-{i}")
            logged(store.get_message(reply.message.parent_id))  # the user's message, saved before the call
            logged(reply.message)
        else:
            stream = chat.stream(f"streamed turn {seed}-{i}")
            for _ in stream:
                pass
            assert stream.reply is not None
            logged(store.get_message(stream.reply.message.parent_id))
            logged(stream.reply.message)


if __name__ == "__main__":
    main()
