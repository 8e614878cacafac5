"""Attachments: images, audio and files kept once by content, read back byte for byte, sent back whole."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from chatkeep import Chat, ResponsesChat, open_store
from chatkeep.context.images import image_size, image_tokens, image_tokens_of_url
from chatkeep.context.tokens import TokenCounter
from chatkeep.store import SQLiteStore
from chatkeep.store.bulk import ImportConversation, ImportMessage
from clitools import environment, run
from fakeopenai import FakeOpenAI, text

PIL = pytest.importorskip("PIL.Image")


def picture(kind: str = "PNG", size: tuple[int, int] = (640, 480), seed: int = 0) -> bytes:
    """A real image file, made by Pillow, with noise so that it does not compress to nothing."""
    import random

    rng = random.Random(seed)
    image = PIL.new("RGB", size)
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def image_message(data: bytes, text_part: str = "What is this?") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text_part},
                                        {"type": "image_url", "image_url": {"url": data_url(data), "detail": "high"}}]}



def test_a_message_reads_back_byte_identical_and_its_image_is_stored_once(store: SQLiteStore) -> None:
    image = picture()
    message = image_message(image)
    first = store.new_conversation("one")
    for _ in range(3):  # the same screenshot, re-sent every turn
        first.append(message)
        first.append({"role": "assistant", "content": "A picture."})
    store.new_conversation("two").append(image_message(image, "Again?"))
    assert first.messages[0] == message and json.dumps(first.messages[0]) == json.dumps(message)
    assert first.history()[0].message == message and store.get_message(first.history()[0].id).message == message
    stats = store.attachment_stats()
    assert stats == {"attachments": 1, "attachment_bytes": len(image)}


def test_every_kind_of_payload_is_kept_once(store: SQLiteStore) -> None:
    audio = b"RIFF" + b"\x00" * 4 + b"WAVEfmt " + bytes(range(256)) * 20
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 20
    gif = picture("GIF", (64, 64), 1)
    messages = [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(),
                                                                            "format": "wav"}}]},
        {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf",
                                                               "file_data": data_url(pdf, "application/pdf")}}]},
    ]
    conversation = store.new_conversation()
    for message in messages:
        conversation.append(message)
    item = {"role": "user", "content": [{"type": "input_image", "image_url": data_url(gif, "image/gif")},
                                        {"type": "input_file", "filename": "b.pdf",
                                         "file_data": data_url(pdf, "application/pdf")}]}
    conversation.append(item, kind="response_item")
    assert conversation.messages == [*messages, item]
    assert store.attachment_stats() == {"attachments": 3, "attachment_bytes": len(audio) + len(pdf) + len(gif)}


def test_search_never_sees_the_base64(store: SQLiteStore) -> None:
    image = picture(seed=2)
    word = next(w for w in base64.b64encode(image).decode().split("+") if len(w) > 12 and w.isalpha())[:10]
    store.new_conversation().append(image_message(image, "a holiday photo"))
    assert store.search(word) == [] and len(store.search("holiday")) == 1


def test_deleting_frees_what_nothing_else_uses(store: SQLiteStore) -> None:
    shared, own = picture(seed=3), picture(seed=4)
    store.new_conversation("a").append(image_message(shared))
    keep = store.new_conversation("b")
    keep.append(image_message(shared))
    keep.append(image_message(own))
    store.fork("b", new_id="c")
    store.delete_conversation("b")
    assert store.attachment_stats()["attachments"] == 2  # the fork still uses both
    store.delete_conversation("c")
    assert store.attachment_stats()["attachments"] == 1
    store.delete_conversation("a")
    assert store.attachment_stats() == {"attachments": 0, "attachment_bytes": 0}


def test_a_failed_import_leaves_no_attachment(store: SQLiteStore) -> None:
    good = ImportConversation([ImportMessage(image_message(picture(seed=5)), key="m1")], key="x:1")
    bad = ImportConversation([ImportMessage({"role": "robot", "content": "no"}, key="m2")], key="x:2")
    with pytest.raises(Exception, match="robot"):
        store.import_conversations([good, bad])
    assert store.attachment_stats()["attachments"] == 0
    store.import_conversations([good])
    assert store.attachment_stats()["attachments"] == 1
    [record] = store.list_conversations()
    assert store.conversation(record.id).messages == [good.messages[0].message]


def test_a_payload_that_is_not_canonical_base64_stays_inline(store: SQLiteStore) -> None:
    odd = "data:image/png;base64," + base64.encodebytes(picture(seed=6)).decode()  # with line breaks
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": odd}}]}
    conversation = store.new_conversation()
    conversation.append(message)
    assert conversation.messages == [message] and store.attachment_stats()["attachments"] == 0


def test_what_is_sent_to_the_api_is_what_the_caller_gave(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    store = open_store(tmp_path / "sent.db")
    message = image_message(picture(seed=7))
    openai_server.script(text("A picture."), text("Still."), text("Yes."))
    conversation = store.new_conversation()
    Chat(conversation, openai_server.client(max_retries=0)).send(message)
    Chat(conversation, openai_server.client(max_retries=0)).send("And now?")  # a new process would read it back
    assert openai_server.requests[1].body["messages"][0] == message
    ResponsesChat(conversation, openai_server.client(max_retries=0)).send("Sure?")
    sent = openai_server.requests[2].body["input"][0]
    assert sent["content"][1] == {"type": "input_image", "image_url": message["content"][1]["image_url"]["url"],
                                  "detail": "high"}


# -- image token counts ------------------------------------------------------------------


def test_openais_published_examples() -> None:
    # https://platform.openai.com/docs/guides/images-vision (calculating costs)
    assert image_tokens(1024, 1024, "high") == 765
    assert image_tokens(2048, 4096, "high") == 1105
    assert image_tokens(4096, 8192, "low") == 85
    assert image_tokens(1024, 1024, "high", "gpt-4.1-mini") == 1659  # 1,024 patches x 1.62
    assert image_tokens(1800, 2400, "high", "gpt-4.1-mini") == 2353  # 33 x 44 patches x 1.62
    assert image_tokens(1024, 1024, "high", "gpt-4o-mini") == 2833 + 4 * 5667


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "WEBP"])
def test_sizes_come_from_the_header_of_real_files(kind: str) -> None:
    data = picture(kind, (1500, 700), 8)
    assert image_size(data) == (1500, 700)
    url = data_url(data, f"image/{kind.lower()}")
    assert image_tokens_of_url(url, "high") == image_tokens(1500, 700, "high") != 765
    counter = TokenCounter("o200k_base")
    with_image = counter.message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]})
    assert with_image == counter.message({"role": "user", "content": []}) + image_tokens(1500, 700)


# -- the command line ----------------------------------------------------------------------


def test_stats_reports_attachments(tmp_path: Path) -> None:
    db = tmp_path / "stats.db"
    image = picture(seed=9)
    open_store(db).new_conversation("c").append(image_message(image))
    stats = json.loads(run(environment(db), "stats", "--json").out)
    assert (stats["attachments"], stats["attachment_bytes"]) == (1, len(image))


def test_chat_attaches_files_by_their_content_and_show_lists_them(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "cli.db"
    photo = tmp_path / "photo.txt"  # the name lies: the content says PNG
    photo.write_bytes(picture(seed=10))
    report = tmp_path / "report.bin"
    report.write_bytes(b"%PDF-1.4\n" + b"x" * 4000)
    openai_server.script(text("A noisy picture and a PDF."))
    env = environment(db, openai_server.base_url)
    result = run(env, "chat", "--attach", str(photo), "-a", str(report), "-m", "What are these?")
    assert result.code == 0, result.err
    parts = openai_server.requests[0].body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "file"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[2]["file"]["filename"] == "report.bin" and parts[2]["file"]["file_data"].startswith("data:application/pdf")
    [record] = open_store(db).list_conversations()
    shown = run(environment(db), "show", record.id).out
    assert "📎 image (image/png," in shown and "📎 file report.bin (application/pdf," in shown
    assert open_store(db).attachment_stats()["attachments"] == 2


def test_a_file_too_big_to_attach_is_refused_before_anything_is_sent(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    big = tmp_path / "big.png"
    with open(big, "wb") as out:
        out.truncate(21 * 1024 * 1024)
    result = run(environment(tmp_path / "big.db", openai_server.base_url), "chat", "--attach", str(big), "-m", "hi")
    assert result.code == 1 and "more than the 20,971,520 a message may carry" in result.err
    assert openai_server.requests == []
