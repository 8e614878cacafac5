"""Attachments as files: a ChatGPT export's zip brings its images and files in, and documents write them out.

The zips are built here from the shared samples' JSON and real image, sound
and PDF files the tests make (Pillow, ``wave``); the samples themselves
carry no files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import stat
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import chromium  # noqa: F401  (the module's headless browser)
from chatkeep import Chat, open_store
from chatkeep.formats import read_conversations, write_conversations
from chatkeep.store import SQLiteStore
from chatkeep.store.base import StoredMessage
from clitools import environment, run
from fakeopenai import FakeOpenAI, text
from test_attachments import data_url, picture

PIL = pytest.importorskip("PIL.Image")
SMALL = (48, 32)  # pictures stay small: each only has to be a real file over the store's 1 KB inline limit

IMAGES = "chatgpt/chatgpt-exporter_image-generation.json"
CODE = "chatgpt/chatgpt2graph_conversations.json"


def pdf() -> bytes:
    out = io.BytesIO()
    PIL.new("RGB", (60, 80), "white").save(out, format="PDF")
    return out.getvalue()


def wav(seconds: float = 0.2, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(rng.randrange(256) for _ in range(int(16000 * seconds))))
    return out.getvalue()


def export_zip(path: Path, conversations: list[dict[str, Any]], files: dict[str, bytes]) -> Path:
    """An export's zip as ChatGPT writes it: conversations.json, the export's other files, and the named files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps(conversations))
        archive.writestr("chat.html", "<html></html>")
        archive.writestr("user.json", json.dumps({"id": "user-abc"}))
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    target = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "files.db"
    opened = open_store(target)
    yield opened
    opened.close()


def by_node(store: SQLiteStore, conversation_id: str) -> dict[str, StoredMessage]:
    return {m.metadata["chatgpt"]["node_id"]: m for m in store.find_messages(conversation_id, kind="chat")}


# -- a ChatGPT export's zip brings its files ----------------------------------------------------

def test_sediment_pointers_bring_the_uploaded_and_the_generated_images(samples: Path, store: SQLiteStore,
                                                                       tmp_path: Path) -> None:
    conversation = json.loads((samples / IMAGES).read_text())
    upload, generated, newer = picture("PNG", SMALL, 1), picture("WEBP", SMALL, 2), picture("JPEG", SMALL, 3)
    archive = export_zip(tmp_path / "export.zip", [conversation], {
        "file_1-3b1f0c2e-8d1a-4c55-9a55-0f7a0f3c1d11.png": upload,            # an upload, at the top
        "user-abc/file_2-2d0c9f3e-1b6a-4f9e-8c1d-5e2a4b6c8d0f.png": generated,  # named .png, WebP inside
        "file_3.dat": newer,                                                     # the newer exports' .dat
        "conversation_asset_file_names.json": json.dumps({"file_3.dat": "dalle-generations/cat.jpg"}).encode(),
    })
    warnings: list[str] = []
    [chat_id] = store.import_conversations(read_conversations(archive, warnings=warnings)).conversation_ids
    nodes = by_node(store, chat_id)
    # The user's upload is a real image part, in the place its pointer had, byte for byte.
    assert nodes["n1"].message["content"] == [{"type": "image_url", "image_url": {"url": data_url(upload, "image/png")}},
                                              {"type": "text", "text": "question 1"}]
    # Generated images are the tool's (imported as the assistant's): the text keeps its line, the image rides beside.
    assert nodes["n2"].message == {"role": "assistant", "content": "[internal_tool result]\n[image: sediment://file_2]",
                                   "images": [{"type": "image_url",
                                               "image_url": {"url": data_url(generated, "image/webp")}}]}
    assert nodes["n9"].message["images"] == [{"type": "image_url", "image_url": {"url": data_url(newer, "image/jpeg")}}]
    # file_4 and file_5 are not in the zip: placeholders, one warning each, naming the conversation and the pointer.
    assert nodes["n16"].message == {"role": "assistant", "content": "[internal_tool result]\n[image: sediment://file_4]"}
    assert "images" not in nodes["n20"].message and "images" not in nodes["n21"].message
    assert len(warnings) == 2, warnings
    for warning, pointer in zip(warnings, ("sediment://file_4", "sediment://file_5")):
        assert "conversations[0] (conversation fixture)" in warning
        assert f"{pointer} is not in the export; kept as a placeholder" in warning
    # file_2 and file_3 are each in two messages; every file is stored once.
    assert store.attachment_stats() == {"attachments": 3, "attachment_bytes": len(upload) + len(generated) + len(newer)}
    again = store.import_conversations(read_conversations(archive, warnings=[]))
    assert (again.conversations_created, again.messages_added) == (0, 0)


def test_the_plain_json_keeps_placeholders_and_says_the_zip_holds_the_files(samples: Path,
                                                                             store: SQLiteStore) -> None:
    warnings: list[str] = []
    [chat_id] = store.import_conversations(read_conversations(samples / IMAGES, warnings=warnings)).conversation_ids
    assert by_node(store, chat_id)["n1"].message["content"] == "[image: sediment://file_1]\nquestion 1"
    assert len(warnings) == 1 and "8 pointer(s) to images and files stay placeholders" in warnings[0]
    assert "import the export's .zip" in warnings[0]
    assert store.attachment_stats()["attachments"] == 0


def test_file_service_uploads_attachments_and_a_voice_message(store: SQLiteStore, tmp_path: Path) -> None:
    photo, report, voice, reply_voice = picture("JPEG", SMALL, 4), pdf(), wav(seed=5), wav(seed=6)

    def node(key: str, parent: str | None, role: str, content: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        return {"id": key, "parent": parent, "children": [], "message": {
            "id": key, "author": {"role": role}, "create_time": 1714590000.0, "content": content, "metadata": metadata}}
    audio = {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://file_00000000aa11", "format": "wav"}
    mapping = {
        "ask": node("ask", None, "user", {"content_type": "multimodal_text", "parts": [
            "What is in these?",
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-Photo123", "width": 48}]},
            attachments=[{"id": "file-Photo123", "name": "beach.jpg", "mime_type": "image/jpeg"},
                         {"id": "file-Report456", "name": "Q3 report.pdf", "mime_type": "application/pdf"},
                         {"id": "file-Gone789", "name": "notes.docx"}]),
        "answer": node("answer", "ask", "assistant", {"content_type": "text", "parts": ["A beach and a report."]}),
        "voice": node("voice", "answer", "user", {"content_type": "multimodal_text", "parts": [
            {"content_type": "audio_transcription", "text": "Tell me more."},
            {"content_type": "real_time_user_audio_video_asset_pointer", "audio_asset_pointer": audio}]}),
        "spoken": node("spoken", "voice", "assistant", {"content_type": "multimodal_text", "parts": [
            {"content_type": "audio_transcription", "text": "Gladly."},
            {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://file_00000000bb22", "format": "wav"}]}),
    }
    archive = export_zip(tmp_path / "export.zip", [{"id": "conv-1", "title": "Files", "mapping": mapping,
                                                     "current_node": "spoken", "create_time": 1714590000.0}], {
        "file-Photo123-beach.jpg": photo,
        "file-Report456-Q3 report.pdf": report,
        "conv-1/audio/file_00000000aa11-6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f.wav": voice,
        "conv-1/audio/file_00000000bb22-7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f.wav": reply_voice,
    })
    warnings: list[str] = []
    [chat_id] = store.import_conversations(read_conversations(archive, warnings=warnings)).conversation_ids
    nodes = by_node(store, chat_id)
    # The image is both a part and an attachment: carried once. The PDF keeps its name; the missing file is named.
    assert nodes["ask"].message["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": data_url(photo, "image/jpeg")}},
        {"type": "file", "file": {"filename": "Q3 report.pdf", "file_data": data_url(report, "application/pdf")}},
        {"type": "text", "text": "[file: notes.docx]"},
    ]
    assert nodes["voice"].message["content"] == [
        {"type": "text", "text": "Tell me more."},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(voice).decode(), "format": "wav"}}]
    # A chat message carries no audio from the assistant: its reply stays text with the placeholder.
    assert nodes["spoken"].message == {"role": "assistant", "content": "Gladly.\n[audio: sediment://file_00000000bb22]"}
    assert len(warnings) == 2, warnings
    assert "conversations[0] (conversation conv-1): file-Gone789 is not in the export" in warnings[0]
    assert "1 audio or other file(s) from ChatGPT's side stay placeholders" in warnings[1]
    assert store.attachment_stats() == {"attachments": 3, "attachment_bytes": len(photo) + len(report) + len(voice)}


def test_code_interpreter_charts_come_by_their_uuid(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    conversations = json.loads((samples / CODE).read_text())
    chart = picture("PNG", SMALL, 7)
    archive = export_zip(tmp_path / "export.zip", conversations,
                         {"c18959c4-6a9f-4f43-a908-5b9c5e500446.png": chart})
    warnings: list[str] = []
    [chat_id] = store.import_conversations(read_conversations(archive, warnings=warnings)).conversation_ids
    output = by_node(store, chat_id)["573050bd-a17f-4c52-87c5-c2710da9f60f"].message
    assert output["content"] == "[python output]\n```\n\n<<ImageDisplayed>>\n```"
    assert output["images"] == [{"type": "image_url", "image_url": {"url": data_url(chart, "image/png")}}]
    # The six other charts are not in this zip: each named once, with its conversation.
    assert len(warnings) == 6 and all("(conversation 966da5c4-5bb7-4e4d-ab6d-a7316b96266e): file-service://" in w
                                      and "is not in the export" in w for w in warnings)


def test_a_file_over_the_limit_stays_a_placeholder_unread(tmp_path: Path) -> None:
    from chatkeep.formats.chatgpt_files import MAX_FILE

    mapping = {"ask": {"id": "ask", "parent": None, "children": [], "message": {
        "id": "ask", "author": {"role": "user"}, "content": {"content_type": "multimodal_text", "parts": [
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-Huge1"}, "Too big?"]}}}}
    archive = tmp_path / "export.zip"
    huge = picture("PNG", SMALL, 12) + random.Random(0).randbytes(MAX_FILE)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("conversations.json", json.dumps([{"id": "big", "mapping": mapping, "current_node": "ask"}]))
        zf.writestr("file-Huge1-scan.png", huge)
    warnings: list[str] = []
    with open_store(tmp_path / "big.db") as store:
        [chat_id] = store.import_conversations(read_conversations(archive, warnings=warnings)).conversation_ids
        assert store.conversation(chat_id).messages == [
            {"role": "user", "content": "[image: file-service://file-Huge1]\nToo big?"}]
    assert len(warnings) == 1 and f"file-service://file-Huge1 is {len(huge):,} bytes, over the" in warnings[0]


def test_an_imported_conversation_is_sent_with_the_users_images(samples: Path, tmp_path: Path,
                                                         openai_server: FakeOpenAI) -> None:
    conversation = json.loads((samples / IMAGES).read_text())
    upload, generated = picture("PNG", SMALL, 8), picture("PNG", SMALL, 9)
    archive = export_zip(tmp_path / "export.zip", [conversation], {"file_1.png": upload, "file_2.png": generated})
    store = open_store(tmp_path / "sent.db")
    [chat_id] = store.import_conversations(read_conversations(archive, warnings=[])).conversation_ids
    openai_server.script(text("It is a picture."))
    Chat(store.conversation(chat_id), openai_server.client(max_retries=0)).send("What did you draw?")
    sent = openai_server.requests[0].body["messages"]
    assert sent[0]["content"][0] == {"type": "image_url", "image_url": {"url": data_url(upload, "image/png")}}
    stored = store.conversation(chat_id).messages[:-1]
    # The model's own image is kept with its message, and not sent: the chat API takes none on an assistant message.
    assert stored[1]["images"] == [{"type": "image_url", "image_url": {"url": data_url(generated, "image/png")}}]
    assert not any("images" in message for message in sent)
    assert sent == [{k: v for k, v in message.items() if k != "images"} for message in stored]


# -- exports ---------------------------------------------------------------------------------------

PHOTO = picture("PNG", SMALL, 10)
REPORT = pdf()
SOUND = wav(seed=11)


def attachments_conversation(store: SQLiteStore) -> list[dict[str, Any]]:
    """A conversation whose messages carry an image (twice), a PDF, a sound and a hostile HTML file."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Look"},
                                     {"type": "image_url", "image_url": {"url": data_url(PHOTO, "image/png")}},
                                     {"type": "file", "file": {"filename": "Q3 report.pdf",
                                                               "file_data": data_url(REPORT, "application/pdf")}}]},
        {"role": "assistant", "content": "A chart and a report."},
        {"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(SOUND).decode(), "format": "wav"}},
            {"type": "image_url", "image_url": {"url": data_url(PHOTO, "image/png")}},
            {"type": "image_url", "image_url": {"url": "https://tracker.example/p.png"}},
            {"type": "file", "file": {"filename": "page.html",
                                      "file_data": data_url(b"<script>alert(1)</script>" * 50, "text/html")}}]},
        {"role": "assistant", "content": "Heard it.",
         "images": [{"type": "image_url", "image_url": {"url": data_url(PHOTO, "image/png")}}]},
    ]
    conversation = store.new_conversation("files", title="Files")
    for message in messages:
        conversation.append(message)
    return messages


def test_messages_and_jsonl_stay_byte_identical_with_inline_base64(store: SQLiteStore, tmp_path: Path) -> None:
    messages = attachments_conversation(store)
    write_conversations(store, "files", "messages", tmp_path / "chat.json")
    assert (tmp_path / "chat.json").read_bytes() == json.dumps(messages, indent=2).encode()
    write_conversations(store, "files", "jsonl", tmp_path / "chat.jsonl")
    assert (tmp_path / "chat.jsonl").read_text() == json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("chat")) == ["chat.json", "chat.jsonl"]


def test_written_names_come_from_the_content_and_cannot_leave_the_folder() -> None:
    from chatkeep.formats.export_attachments import Attachment

    digest = hashlib.sha256(REPORT).hexdigest()[:16]
    assert Attachment("file", "application/pdf", REPORT, "../../etc/passwd").file_name == f"{digest}-etc_passwd.bin"
    assert Attachment("file", "application/pdf", REPORT, "a/b\\c.pdf").file_name == f"{digest}-a_b_c.pdf"
    assert Attachment("file", "application/pdf", REPORT, "run.sh").file_name == f"{digest}-run.sh.bin"
    assert Attachment("file", "application/pdf", REPORT).file_name == f"{digest}.pdf"
    assert Attachment("image", "image/svg+xml", b"<svg onload=alert(1)>").file_name.endswith(".bin")


def links(document: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", document)


def test_markdown_writes_each_file_once_beside_it_and_links_it(store: SQLiteStore, tmp_path: Path) -> None:
    attachments_conversation(store)
    target = tmp_path / "my chat.md"
    write_conversations(store, "files", "markdown", target)
    document = target.read_text()
    folder = tmp_path / "my chat_files"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {p.name: p for p in folder.iterdir()}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files.values())
    # Named by content: the picture used three times is one file; a name that would run something gets .bin.
    ends = {"png": ".png", "pdf": "-Q3_report.pdf", "wav": ".wav", "html": "-page.html.bin"}
    named = {kind: next(n for n in files if n.endswith(end)) for kind, end in ends.items()}
    assert len(files) == 4 and all(re.fullmatch(r"[0-9a-f]{16}[-.].*", n) for n in files)
    assert [files[named[k]].read_bytes() for k in ("png", "pdf", "wav")] == [PHOTO, REPORT, SOUND]
    found = links(document)
    assert len(found) == 6 and all(link.startswith("my%20chat_files/") for link in found)
    assert all((tmp_path / link.replace("%20", " ")).is_file() for link in found)
    png = named["png"]
    assert document.count(f"![image: {png}, image/png, {len(PHOTO) / 1024:.1f} KB](my%20chat_files/{png})") == 3
    assert "[file: Q3_report.pdf, application/pdf, " in document
    assert "[image: https://tracker.example/p.png]" in document  # a remote image stays text: nothing is loaded
    before = {name: path.stat().st_mtime_ns for name, path in files.items()}
    write_conversations(store, "files", "markdown", target)  # again: the same names, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_html_shows_images_from_files_beside_it_and_loads_nothing_remote(store: SQLiteStore, tmp_path: Path) -> None:
    attachments_conversation(store)
    target = tmp_path / "chat.html"
    write_conversations(store, "files", "html", target)
    page = target.read_text()
    assert ("content=\"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file:; media-src 'self' file:\""
            in page)
    sources = re.findall(r'<(img|audio) [^>]*src="([^"]+)"', page)
    assert [kind for kind, _ in sources] == ["img", "audio", "img", "img"]
    assert all(source.startswith("chat_files/") and (tmp_path / source).is_file() for _, source in sources)
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert len(hrefs) == 2 and all(href.startswith("chat_files/") for href in hrefs)
    assert "<script" not in page and "tracker.example/p.png" in page and 'src="https' not in page


def test_inline_html_is_one_self_contained_page(store: SQLiteStore, tmp_path: Path) -> None:
    attachments_conversation(store)
    target = tmp_path / "chat.html"
    write_conversations(store, "files", "html", target, attachments="inline")
    page = target.read_text()
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src data:\"" in page
    sources = [s for _, s in re.findall(r'<(img|audio) [^>]*src="([^"]+)"', page)]
    assert sources == [data_url(PHOTO, "image/png"), data_url(SOUND, "audio/wav"), data_url(PHOTO, "image/png"),
                       data_url(PHOTO, "image/png")]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("chat")) == ["chat.html"]


@pytest.mark.parametrize("attachments", ["files", "inline"])
def test_a_browser_shows_the_pages_images_and_asks_for_nothing_else(chromium: Any, tmp_path: Path,
                                                                      attachments: str) -> None:
    with open_store(tmp_path / "web.db") as memory:
        attachments_conversation(memory)
        write_conversations(memory, "files", "html", tmp_path / "chat.html", attachments=attachments)  # type: ignore[arg-type]
    page = chromium.new_page()
    asked: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.on("console", lambda message: console.append(message.text))
    page.goto((tmp_path / "chat.html").as_uri())
    page.wait_for_load_state("load")
    sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.naturalWidth, i.naturalHeight])")
    page.close()
    assert sizes == [[48, 32]] * 3 and console == []  # shown, and nothing refused by the page's policy
    assert asked and all(url.startswith(("file://", "data:")) for url in asked), asked


def test_a_zip_holds_the_document_and_its_files(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        attachments_conversation(store)
    env = environment(db)
    for name, document in (("chat.zip", "chat.md"), ("chat.html.zip", "chat.html")):
        result = run(env, "export", "files", "-o", str(tmp_path / name))
        assert (result.code, result.err) == (0, f"Wrote {tmp_path / name}\n")
        with zipfile.ZipFile(tmp_path / name) as archive:
            names = archive.namelist()
            assert names[-1] == document and all(n.startswith("chat_files/") for n in names[:-1]) and len(names) == 5
            text_of = archive.read(document).decode()
            found = links(text_of) if document.endswith(".md") else re.findall(r'(?:src|href)="([^"]+)"', text_of)
            assert found and all(link.replace("%20", " ") in names for link in found)
            assert archive.read(next(n for n in names if n.endswith(".png"))) == PHOTO
            assert all(stat.S_IMODE(info.external_attr >> 16) == 0o600 for info in archive.infolist())
    assert not (tmp_path / "chat_files").exists()
    refused = run(env, "export", "files", "-f", "jsonl", "-o", str(tmp_path / "data.zip"))
    assert refused.code == 1 and "a .zip holds a markdown or html export" in refused.err
    assert "Traceback" not in refused.err and not (tmp_path / "data.zip").exists()


def test_stdout_names_each_attachment_and_says_how_to_keep_them(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        attachments_conversation(store)
    result = run(environment(db), "export", "files")
    assert result.code == 0
    png = re.search(r"\[image: (\w{16}\.png), image/png, ", result.out)
    assert png and result.out.count(f"[image: {png[1]}, image/png, {len(PHOTO) / 1024:.1f} KB; left out of this"
                                    " export]") == 3
    assert re.search(r"\[audio: \w{16}\.wav, audio/wav, [\d.]+ KB; left out of this export\]", result.out)
    assert "[file: Q3_report.pdf, application/pdf, " in result.out and "base64" not in result.out
    assert result.err == ("chatkeep: 6 attachment(s) shown as placeholders: an export to a stream has no place"
                          " beside it for their files (use -o FILE, or --inline)\n")
    inline = run(environment(db), "export", "files", "-f", "html", "--inline")
    assert inline.code == 0 and inline.err == "" and f'src="{data_url(PHOTO, "image/png")}"' in inline.out
    assert not list(tmp_path.glob("*_files"))  # stdout writes nothing beside anything
