"""LSP conformance of `glint lsp`, as seen by the clients we ship for.

Each test runs once per captured client (fixtures/*.json: Neovim 0.7.2, 0.11.4 and 0.12, Helix
25.01, VS Code): the server is initialized with that editor's own capabilities and
initializationOptions, every response is structured into its LSP 3.18 type by lsprotocol (through
pytest-lsp, which also checks results against the client's capabilities, and once more strictly
from the raw message), and our own assertions cover what lsprotocol cannot: positions in the
negotiated encoding, inline completion items, code actions, Glint's own methods.
The engine is the scripted fake (`--engine fake:TEXT`), so every answer is known.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest
from lsprotocol import types
from lsprotocol.converters import get_converter
from pytest_lsp import LspSpecificationWarning

from conftest import check_range, position_of, structure_strictly

# The document most tests type in: non-ASCII before the cursor, so each encoding gives different
# character offsets (é is 2 UTF-8 bytes, 😀 is 4 UTF-8 bytes and 2 UTF-16 units).
LINE0 = "def greet(name):\n"
LINE1 = '    msg = "héllo 😀 " + na'
DOC = LINE0 + LINE1
CURSOR = len(DOC)
WORD_START = len(DOC) - len("na")
# What the fake engine answers after `na`.
REPLY = "me"
KNOWN_ENCODINGS = ("utf-8", "utf-16", "utf-32")


def client_settings(session) -> dict:
    """Glint's settings as this client sends them: initializationOptions, then any
    didChangeConfiguration it sends after `initialized`."""
    settings = dict((session.params.get("initializationOptions") or {}).get("glint") or {})
    for change in session.fixture.get("didChangeConfiguration") or []:
        settings.update(((change or {}).get("settings") or {}).get("glint") or {})
    return settings


def supports_inline_completion(session) -> bool:
    return session.capabilities.text_document is not None and session.capabilities.text_document.inline_completion is not None


# Initialize.


async def test_initialize_result(glint):
    s = await glint()
    result = structure_strictly(s.raw_initialize, types.INITIALIZE)
    assert isinstance(result, types.InitializeResult)
    assert result.server_info is not None and result.server_info.name == "glint"
    caps = s.raw_initialize["result"]["capabilities"]

    # Position encoding: one the client offered, or UTF-16 when it offered none (LSP 3.17+).
    offered = list((s.params["capabilities"].get("general") or {}).get("positionEncodings") or [])
    chosen = caps.get("positionEncoding", "utf-16")
    assert isinstance(chosen, str)
    if offered:
        assert chosen in offered, f"{chosen} is not among the client's {offered}"
        # Glint takes the client's first choice among the encodings it knows (all three).
        assert chosen == next(e for e in offered if e in KNOWN_ENCODINGS), "not the client's first choice"
    else:
        assert chosen == "utf-16", "a client without positionEncodings only speaks UTF-16"

    # Text sync: open/close and incremental changes.
    sync = result.capabilities.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions), sync
    assert sync.open_close is True
    assert sync.change == types.TextDocumentSyncKind.Incremental

    # Inline completion is always offered; clients without it simply never ask.
    assert result.capabilities.inline_completion_provider not in (None, False)

    # Completion items follow the client's `completionItems` setting (the VS Code extension turns
    # them off: it shows ghost text).
    wants_items = client_settings(s).get("completionItems", True)
    if wants_items:
        assert isinstance(result.capabilities.completion_provider, types.CompletionOptions)
    else:
        assert result.capabilities.completion_provider is None

    # Glint's streaming notification is advertised as documented.
    assert caps.get("experimental", {}).get("glint", {}).get("inlineCompletionProgress") is True

    # Code actions, once offered: resolvable lazily for clients that resolve `edit`.
    provider = result.capabilities.code_action_provider
    if provider not in (None, False):
        resolves_edit = "edit" in (
            s.params["capabilities"].get("textDocument", {}).get("codeAction", {}).get("resolveSupport", {}).get("properties")
            or []
        )
        if resolves_edit:
            assert isinstance(provider, types.CodeActionOptions) and provider.resolve_provider is True, provider


# Document sync.


async def test_incremental_sync_in_negotiated_encoding(glint):
    s = await glint()
    uri = s.open("sync.py", DOC + "\n")
    text = DOC + "\n"
    enc = s.encoding

    def edit(start: int, end: int, new: str):
        nonlocal text
        rng = types.Range(start=position_of(text, start, enc), end=position_of(text, end, enc))
        version = s.change(uri, rng, new)
        text = text[:start] + new + text[end:]
        return version

    # Typing after the emoji: the offset differs in every encoding.
    edit(CURSOR, CURSOR, "me")
    # Replacing the emoji itself (a surrogate pair in UTF-16) by one with a skin-tone modifier.
    emoji = text.index("😀")
    edit(emoji, emoji + 1, "👍🏽")
    # A change across lines: join line 1 onto line 0's end, then split it again with new text.
    newline = text.index("\n")
    edit(newline, newline + 1, " ")
    version = edit(newline, newline + 1, "\n    # é 😀\n")

    state = await s.document_state(uri)
    assert state is not None, "the server lost the document"
    assert state["version"] == version
    assert state["text"] == text, f"the server's text diverged in {enc}"

    s.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await s.document_state(uri) is None, "the server still holds a closed document"


# Completion items.


async def test_completion_item_text_edit(glint):
    s = await glint(f"fake:{REPLY}")
    if s.result.capabilities.completion_provider is None:
        pytest.skip(f"{s.fixture['editor']}: completionItems is off in its settings (it shows ghost text)")
    uri = s.open("complete.py", DOC)
    enc = s.encoding
    pos = position_of(DOC, CURSOR, enc)
    params = types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=pos,
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
    )
    # pytest-lsp checks the items against the client's capabilities; collect its warnings so the
    # assertions below run either way, and judge them at the end.
    with warnings.catch_warnings(record=True) as spec_warnings:
        warnings.simplefilter("always", LspSpecificationWarning)
        typed, raw = await s.request(types.TEXT_DOCUMENT_COMPLETION, params)
    result = structure_strictly(raw, types.TEXT_DOCUMENT_COMPLETION)
    assert isinstance(typed, (types.CompletionList, list))
    items = result.items if isinstance(result, types.CompletionList) else result
    assert items, f"no completion items: {raw['result']}"
    completion = s.params["capabilities"]["textDocument"].get("completion", {})
    kinds = (completion.get("completionItemKind") or {}).get("valueSet")
    insert_replace = (completion.get("completionItem") or {}).get("insertReplaceSupport", False)
    for item, raw_item in zip(items, raw["result"]["items"] if isinstance(raw["result"], dict) else raw["result"]):
        assert isinstance(raw_item["label"], str)
        if kinds is not None and "kind" in raw_item:
            assert raw_item["kind"] in kinds, f"kind {raw_item['kind']} is not in the client's valueSet"
        if isinstance(item.text_edit, types.InsertReplaceEdit):
            assert insert_replace, "InsertReplaceEdit sent to a client without insertReplaceSupport"
    ai = items[0]
    assert isinstance(ai.text_edit, types.TextEdit), f"expected a TextEdit, got {ai.text_edit!r}"
    rng = ai.text_edit.range
    check_range(DOC, rng, enc)
    # The edit replaces the word being typed (`na`) and ends at the cursor, on one line that holds
    # the position (LSP: "a single line range ... must contain the position").
    assert rng.start == position_of(DOC, WORD_START, enc), f"start {rng.start} in {enc}"
    assert rng.end == pos, f"end {rng.end} in {enc}"
    assert ai.text_edit.new_text == "na" + REPLY
    assert isinstance(raw["result"]["items"][0]["textEdit"]["newText"], str)
    assert ai.insert_text_format in (None, types.InsertTextFormat.PlainText)
    judge_spec_warnings(s, spec_warnings)


# Known deviations, each with the request and what the client declared. They are expected
# failures until the server is fixed (then the test passes and the entry should go).
# (client, pytest-lsp warning) -> why the server still does it. Empty: every response uses only
# what the client declared.
KNOWN_DEVIATIONS: dict = {}


def judge_spec_warnings(s, caught) -> None:
    # pytest-lsp's message is the assertion's text, then the assertion itself on later lines.
    messages = [str(w.message).split("\n")[0] for w in caught if issubclass(w.category, LspSpecificationWarning)]
    unknown = [m for m in messages if (s.name, m) not in KNOWN_DEVIATIONS]
    assert not unknown, f"the response uses what {s.fixture['editor']} did not declare: {unknown}"
    known = [KNOWN_DEVIATIONS[(s.name, m)] for m in messages]
    if known:
        pytest.xfail("known server deviation: " + "; ".join(known))


# Inline completion (LSP 3.18).


async def inline_request(s, uri, pos, trigger, selected=None):
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=pos,
        context=types.InlineCompletionContext(
            trigger_kind=trigger,
            selected_completion_info=None
            if selected is None
            else types.SelectedCompletionInfo(
                range=types.Range(
                    start=types.Position(**selected["range"]["start"]), end=types.Position(**selected["range"]["end"])
                ),
                text=selected["text"],
            ),
        ),
    )
    _, raw = await s.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
    result = structure_strictly(raw, types.TEXT_DOCUMENT_INLINE_COMPLETION)
    assert result is not None, "no inline completion"
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    raw_items = raw["result"]["items"] if isinstance(raw["result"], dict) else raw["result"]
    for item, raw_item in zip(items, raw_items):
        assert isinstance(item, types.InlineCompletionItem)
        # lsprotocol accepts a StringValue object here too; our items are plain text.
        assert isinstance(raw_item["insertText"], str), raw_item
        assert raw_item.get("insertTextFormat") in (None, 1), "snippets are not what we send"
        if item.range is not None:
            check_range(DOC, item.range, s.encoding)
    return items


@pytest.mark.parametrize("trigger", [types.InlineCompletionTriggerKind.Automatic, types.InlineCompletionTriggerKind.Invoked])
async def test_inline_completion_item(glint, trigger):
    s = await glint(f"fake:{REPLY}")
    if not supports_inline_completion(s):
        pytest.skip(f"{s.fixture['editor']} does not implement textDocument/inlineCompletion")
    uri = s.open("inline.py", DOC)
    pos = position_of(DOC, CURSOR, s.encoding)
    items = await inline_request(s, uri, pos, trigger)
    assert items, "no items"
    if trigger == types.InlineCompletionTriggerKind.Automatic:
        assert len(items) == 1, "an automatic trigger gets one item"
    assert len({i.insert_text for i in items}) == len(items), "items repeat"
    first = items[0]
    assert first.insert_text == REPLY
    # Inserted at the cursor: an empty range there (or none, which means the same).
    if first.range is not None:
        assert first.range.start == pos and first.range.end == pos, f"{first.range} in {s.encoding}"
    if client_settings(s).get("streaming"):
        texts = [p.text for p in s.client.progress_texts]
        assert texts, "streaming is on but no glint/inlineCompletionProgress arrived"
        for progress in s.client.progress_texts:
            assert progress.uri == uri and progress.version == 1
            assert (progress.position.line, progress.position.character) == (pos.line, pos.character)
        # The text so far only grows, and each one is a prefix of the final item.
        assert all(REPLY.startswith(t) for t in texts) and texts == sorted(texts, key=len), texts


async def test_inline_completion_with_selected_completion(glint):
    s = await glint(f"fake:{REPLY}")
    if not supports_inline_completion(s):
        pytest.skip(f"{s.fixture['editor']} does not implement textDocument/inlineCompletion")
    uri = s.open("selected.py", DOC)
    enc = s.encoding
    start, end = position_of(DOC, WORD_START, enc), position_of(DOC, CURSOR, enc)
    # The editor's completion widget has `name` selected, which would replace `na`.
    selected = {
        "range": {"start": {"line": start.line, "character": start.character}, "end": {"line": end.line, "character": end.character}},
        "text": "name",
    }
    items = await inline_request(s, uri, end, types.InlineCompletionTriggerKind.Automatic, selected)
    assert items, "no items"
    for item in items:
        assert item.range is not None and item.range.start == start and item.range.end == end, item.range
        assert item.insert_text.startswith("name"), "the item must extend the selected completion"


# Glint's own methods.


async def test_glint_status(glint):
    s = await glint()
    s.open("status.py", DOC)
    # documentState is answered in order after didOpen, so the count below includes it.
    await s.document_state(s.uri("status.py"))
    _, raw = await s.request("glint/status", None)
    assert "error" not in raw, raw
    status = raw["result"]
    assert isinstance(status, dict), status
    assert isinstance(status.get("version"), str)
    assert status.get("positionEncoding") == s.encoding
    assert status.get("documents") == 1
    info = s.params.get("clientInfo") or {}
    assert status.get("client", {}).get("name") == info.get("name")
    assert status.get("client", {}).get("version") == info.get("version")
    assert status.get("engine", {}).get("state") in ("none", "loading", "ready", "failed")
    settings = status.get("settings")
    assert isinstance(settings, dict), status
    # The client's own settings arrived (the command line's --engine wins over its `engine`).
    for key, value in client_settings(s).items():
        if key in ("engine",) or value is None:
            continue
        assert settings.get(key) == value, f"setting {key}: {settings.get(key)!r}, the client sent {value!r}"
    assert settings.get("engine") == s.engine


# Code actions.


def apply_edits(text: str, edits: list[types.TextEdit], enc: str) -> str:
    """Applies non-overlapping edits, last first."""

    def index(pos: types.Position) -> int:
        lines = text.split("\n")
        before = sum(len(line) + 1 for line in lines[: pos.line])
        line = lines[pos.line]
        for i in range(len(line) + 1):
            if position_of(line, i, enc).character == pos.character:
                return before + i
        raise AssertionError(f"{pos} is not a character boundary in {enc}")

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start, end = index(edit.range.start), index(edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
    return text


def edits_for(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    found: list[types.TextEdit] = []
    for target, changes in (edit.changes or {}).items():
        assert target == uri, f"an edit of another file: {target}"
        found.extend(changes)
    for change in edit.document_changes or []:
        assert isinstance(change, types.TextDocumentEdit), f"only text edits are expected: {change!r}"
        assert change.text_document.uri == uri
        found.extend(e for e in change.edits if isinstance(e, types.TextEdit))
    return found


ACTION_DOC = 'def add(a, b):\n    """Adds é and 😀."""\n    pass\n'
ACTION_REPLY = "return a + b"


async def test_code_actions_list_and_resolve(glint):
    s = await glint(f"fake:{ACTION_REPLY}")
    if s.result.capabilities.code_action_provider in (None, False):
        pytest.skip("the server does not offer textDocument/codeAction yet (no codeActionProvider)")
    uri = s.open("actions.py", ACTION_DOC)
    enc = s.encoding
    at = position_of(ACTION_DOC, ACTION_DOC.index("pass") + 2, enc)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=at, end=at),
        context=types.CodeActionContext(diagnostics=[], trigger_kind=types.CodeActionTriggerKind.Invoked),
    )
    _, raw = await s.request(types.TEXT_DOCUMENT_CODE_ACTION, params)
    listed = structure_strictly(raw, types.TEXT_DOCUMENT_CODE_ACTION)
    assert listed, f"no code actions inside a function whose body is `pass`: {raw['result']}"
    code_action_caps = s.params["capabilities"]["textDocument"].get("codeAction", {})
    literal = "codeActionLiteralSupport" in code_action_caps
    resolves_edit = "edit" in ((code_action_caps.get("resolveSupport") or {}).get("properties") or [])
    resolved_texts = []
    for action, raw_action in zip(listed, raw["result"]):
        assert isinstance(action, (types.CodeAction, types.Command)), action
        if isinstance(action, types.Command):
            continue
        assert literal, "a CodeAction literal sent to a client without codeActionLiteralSupport"
        assert isinstance(raw_action["title"], str) and raw_action["title"]
        assert "data" in raw_action, f"action {action.title!r} has no data to resolve it by"
        # Kinds refine the base kinds the client knows, so its filters (`only`, menus) work.
        value_set = (code_action_caps.get("codeActionLiteralSupport") or {}).get("codeActionKind", {}).get("valueSet", [])
        kind = raw_action.get("kind")
        assert isinstance(kind, str), f"{action.title!r} has no kind"
        assert any(kind == v or kind.startswith(v + ".") for v in value_set if v), f"{kind} refines none of {value_set}"
        if action.edit is None:
            assert resolves_edit, f"{action.title!r} needs resolving but the client cannot resolve `edit`"
            _, raw_resolved = await s.request(types.CODE_ACTION_RESOLVE, action)
            resolved = structure_strictly(raw_resolved, types.CODE_ACTION_RESOLVE)
            assert isinstance(resolved, types.CodeAction)
            assert resolved.title == action.title
            assert "edit" in raw_resolved["result"], f"{action.title!r} resolved without an edit"
            edit = resolved.edit
        else:
            edit = action.edit
        assert isinstance(edit, types.WorkspaceEdit), edit
        edits = edits_for(edit, uri)
        assert edits, f"{action.title!r}: an empty WorkspaceEdit"
        for text_edit in edits:
            check_range(ACTION_DOC, text_edit.range, enc)
        resolved_texts.append(apply_edits(ACTION_DOC, edits, enc))
    assert any(ACTION_REPLY in t for t in resolved_texts), f"no action's edit holds the engine's text: {resolved_texts}"
    # Resolving runs the model with work-done progress where the client shows it; pytest-lsp
    # already checked that each token was created before use. Each one begins and ends.
    if (s.params["capabilities"].get("window") or {}).get("workDoneProgress"):
        # JSON-RPC does not order a notification against a response: the `end` sent just before
        # the resolve's answer may arrive just after it. Give it a moment, then check.
        await wait_until_progress_ended(s.client, timeout=5.0)
        for token, reports in s.client.progress_reports.items():
            assert reports and isinstance(reports[0], types.WorkDoneProgressBegin), f"{token}: {reports}"
            assert isinstance(reports[-1], types.WorkDoneProgressEnd), f"{token} never ended: {reports}"


async def wait_until_progress_ended(client, timeout: float) -> None:
    """Waits (at most `timeout` seconds) until every progress token's last report is an `end`."""

    def ended() -> bool:
        return all(r and isinstance(r[-1], types.WorkDoneProgressEnd) for r in client.progress_reports.values())

    deadline = asyncio.get_running_loop().time() + timeout
    while not ended() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


async def test_code_action_resolve_after_an_edit_is_content_modified(glint):
    s = await glint(f"fake:{ACTION_REPLY}")
    if s.result.capabilities.code_action_provider in (None, False):
        pytest.skip("the server does not offer textDocument/codeAction yet (no codeActionProvider)")
    uri = s.open("stale_action.py", ACTION_DOC)
    at = position_of(ACTION_DOC, ACTION_DOC.index("pass") + 2, s.encoding)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=at, end=at),
        context=types.CodeActionContext(diagnostics=[]),
    )
    _, raw = await s.request(types.TEXT_DOCUMENT_CODE_ACTION, params)
    listed = [a for a in structure_strictly(raw, types.TEXT_DOCUMENT_CODE_ACTION) or [] if isinstance(a, types.CodeAction)]
    lazy = [a for a in listed if a.edit is None]
    if not lazy:
        pytest.skip("no action is resolved lazily here")
    end = position_of(ACTION_DOC, len(ACTION_DOC), s.encoding)
    s.change(uri, types.Range(start=end, end=end), "\n# edited\n")
    _, raw = await s.request(types.CODE_ACTION_RESOLVE, lazy[0])
    assert error_code(raw) == types.LSPErrorCodes.ContentModified, raw


# Cancellation and errors.

# One chunk after 2 s: long enough to be in flight when the test acts, short enough to wait for.
SLOW_ENGINE = "fake+delay=2000:me"


def ask_like_the_client(s, uri, pos):
    """The request this client makes for AI text: inline completion where it has it, else
    completion items."""
    doc = types.TextDocumentIdentifier(uri=uri)
    if supports_inline_completion(s):
        return types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
            text_document=doc,
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    return types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(text_document=doc, position=pos)


def error_code(raw: dict) -> int:
    assert "error" in raw, f"expected an error response, got {raw}"
    error = get_converter().structure(raw, types.ResponseErrorMessage).error
    assert isinstance(raw["error"]["code"], int) and isinstance(raw["error"]["message"], str), raw
    return error.code


async def test_edit_makes_in_flight_request_content_modified(glint):
    s = await glint(SLOW_ENGINE)
    uri = s.open("stale.py", DOC)
    pos = position_of(DOC, CURSOR, s.encoding)
    method, params = ask_like_the_client(s, uri, pos)
    pending = await s.send(method, params)
    # Messages are handled in order: the request is in flight before the edit arrives, and the
    # engine's first chunk is far away.
    await asyncio.sleep(0.3)
    s.change(uri, types.Range(start=pos, end=pos), "x")
    _, raw = await s.finish(pending)
    assert error_code(raw) == types.LSPErrorCodes.ContentModified, raw
    # The server keeps serving: the same request on the new text answers.
    moved = position_of(DOC + "x", CURSOR + 1, s.encoding)
    method, params = ask_like_the_client(s, uri, moved)
    _, raw = await s.request(method, params)
    assert structure_strictly(raw, method) is not None


async def test_cancel_request_answers_request_cancelled(glint):
    s = await glint(SLOW_ENGINE)
    uri = s.open("cancel.py", DOC)
    method, params = ask_like_the_client(s, uri, position_of(DOC, CURSOR, s.encoding))
    pending = await s.send(method, params)
    await asyncio.sleep(0.3)
    s.cancel(pending[0])
    _, raw = await s.finish(pending)
    assert error_code(raw) == types.LSPErrorCodes.RequestCancelled, raw


async def test_unknown_method_is_method_not_found(glint):
    s = await glint()
    _, raw = await s.request("glint/noSuchMethod", {})
    assert error_code(raw) == types.ErrorCodes.MethodNotFound, raw


# Shutdown.


async def test_shutdown_and_exit(glint):
    s = await glint()
    s.open("bye.py", DOC)
    raw = await s.shutdown()
    assert "error" not in raw, raw
    assert "result" in raw and raw["result"] is None, "shutdown answers a null result"
    server = s.client._server
    # A liveness limit, not a performance assertion: a server that never exits fails here.
    code = await asyncio.wait_for(server.wait(), 20)
    assert code == 0, f"exit after shutdown should give status 0, got {code}"
