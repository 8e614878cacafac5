"""The samples of ../shared/samples through the real ``chatkeep import``, and a guard that none is left untested.

What each format keeps is checked against its file in the tests/test_import_<format>.py
files, and tests/test_formats_import.py imports every sample twice on both
backends (the second import adds nothing). Here each sample of a format added
by issue 18 goes through the command a user runs, and the guard fails when a
sample or schema is added that no test imports.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clitools import Result, environment, run

#: Every .json/.jsonl conversation sample, with the format its content is detected as.
SAMPLES = {
    "chatgpt/DERIVED_pkuppens_subset_4convs.json": "chatgpt",
    "chatgpt/chatgpt-exporter_image-generation.json": "chatgpt",
    "chatgpt/chatgpt2graph_conversations.json": "chatgpt",
    "chatgpt/librechat_chatgpt-citations.json": "chatgpt",
    "chatgpt/librechat_chatgpt-export.json": "chatgpt",
    "chatgpt/librechat_chatgpt-tree.json": "chatgpt",
    "claude/openwebui-importer_claude_example.json": "claude",
    "finetune/openai-cookbook_drone_training.jsonl": "jsonl",
    "finetune/openai-cookbook_toy_chat_fine_tuning.jsonl": "jsonl",
    "librechat/librechat_librechat-linear.json": "librechat",
    "librechat/librechat_librechat-opts-nonr-branches.json": "librechat",
    "librechat/librechat_librechat-tree.json": "librechat",
    "openwebui/librechat_openwebui-export.json": "openwebui",
    "openwebui/openwebui-importer_webui-json.json": "openwebui",
    "other/aistudio/openwebui-importer_aistudio_example.json": "aistudio",
    "other/chatbot-ui/librechat_chatbotui-export.json": "chatbotui",
    "other/deepseek/deepseek-exporter_test_chat_raw_2025-11-22.json": "deepseek",
    "other/grok/openwebui-importer_grok_example.json": "grok",
    "other/llm/DERIVED_llm_logs_json_docs_example.json": "llm",
    "other/sharegpt/fastchat_dummy_conversation.json": "sharegpt",
    "other/sharegpt/llamafactory_glaive_toolcall_en_demo.json": "sharegpt",
    "other/sharegpt/llamafactory_mllm_demo.json": "sharegpt",
    "plain/DERIVED_llm_cassette_tool_calls_messages.json": "messages",
    "plain/chatgpt-cli_history.json": "messages",
}
#: API traffic recordings are not conversation files; the Conversations API examples are a server's answers,
#: which tests/test_conversations_api.py checks the loopback server and the import against.
NOT_CONVERSATION_FILES = ("other/chat_completions_traffic/", "other/responses_api/", "other/conversations_api/")
#: The database schemas, and the tests that build such a database with the library that owns it.
SCHEMAS = {
    "DERIVED_llm_0.31.1_logs_db_schema.sql": "test_import_llm.py::test_the_classic_logs_db",
    "DERIVED_llm_0.32_logs_db_schema_docs.sql": "test_import_llm.py::test_the_message_store",
    "DERIVED_openai-agents_sqlite_session_schema.sql": "test_import_databases.py::test_an_advanced_sqlite_session",
    "DERIVED_langchain_sql_chat_message_history_schema.sql": "test_import_databases.py::test_langchain_message_store",
}
SUMMARY = re.compile(r"Imported ([\d,]+) new and ([\d,]+) updated conversations, ([\d,]+) messages "
                     r"\(([\d,]+) already there\) from .* \((\S+)\)\.")


def numbers(output: str) -> tuple[int, int, int, int, str]:
    found = SUMMARY.search(output)
    assert found, output
    created, updated, added, skipped = (int(n.replace(",", "")) for n in found.groups()[:4])
    return created, updated, added, skipped, found[5]


def test_the_cli_offers_every_format() -> None:
    from chatkeep.cli.transfer import EXPORT_FORMATS as cli_exports
    from chatkeep.cli.transfer import IMPORT_FORMATS as cli_imports
    from chatkeep.formats import EXPORT_FORMATS, IMPORT_FORMATS

    assert (tuple(cli_imports), tuple(cli_exports)) == (IMPORT_FORMATS, EXPORT_FORMATS)


def test_every_sample_and_schema_is_covered(samples: Path) -> None:
    files = {str(p.relative_to(samples)) for p in samples.rglob("*") if p.suffix in (".json", ".jsonl")}
    conversation_files = {f for f in files if not f.startswith(NOT_CONVERSATION_FILES)}
    assert conversation_files == set(SAMPLES)
    schemas = {p.name for p in (samples / "other/db_schemas").glob("*.sql")}
    assert schemas == set(SCHEMAS)
    here = Path(__file__).parent
    for test in SCHEMAS.values():
        module, name = test.split("::")
        assert f"def {name}(" in (here / module).read_text()


#: The samples whose formats issue 18 added, and the first import's (conversations, messages).
NEW = {
    "chatgpt/chatgpt-exporter_image-generation.json": (1, 17),
    "claude/openwebui-importer_claude_example.json": (83, 557),
    "librechat/librechat_librechat-linear.json": (1, 2),
    "librechat/librechat_librechat-opts-nonr-branches.json": (1, 5),
    "librechat/librechat_librechat-tree.json": (1, 10),
    "openwebui/librechat_openwebui-export.json": (3, 8),
    "openwebui/openwebui-importer_webui-json.json": (1, 2),
    "other/aistudio/openwebui-importer_aistudio_example.json": (1, 2),
    "other/chatbot-ui/librechat_chatbotui-export.json": (2, 8),
    "other/deepseek/deepseek-exporter_test_chat_raw_2025-11-22.json": (1, 11),
    "other/grok/openwebui-importer_grok_example.json": (1, 10),
    "other/llm/DERIVED_llm_logs_json_docs_example.json": (1, 2),
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Each new sample imported by the real command into a database of its own, two at a time."""
    from conftest import SAMPLES as folder

    if not folder.is_dir():
        pytest.skip(f"sample files not found at {folder}")
    base = tmp_path_factory.mktemp("samples")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(run, environment(base / f"{i}.db"), "import", str(folder / name))
                   for i, name in enumerate(sorted(NEW))}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(NEW))
def test_each_new_sample_imports_with_the_cli(imported: dict[str, Result], name: str) -> None:
    result = imported[name]
    assert result.code == 0, result.err
    assert numbers(result.out) == (*NEW[name][:1], 0, NEW[name][1], 0, SAMPLES[name])
