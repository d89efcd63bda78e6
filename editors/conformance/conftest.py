"""Shared pieces of the conformance tests: the captured client fixtures, a pytest-lsp client that
keeps every raw response next to the structured one, and a `Session` that starts `glint lsp`
with the scripted fake engine and initializes it exactly as the captured editor did.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pathlib
import uuid
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import register_lsp_features
from pytest_lsp.protocol import LanguageClientProtocol

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = sorted(p.stem for p in (HERE / "fixtures").glob("*.json"))
# A request that takes longer than this means the server hung; it is not a performance limit.
REQUEST_LIMIT_S = 30.0


def glint_binary() -> str:
    """The server under test: $GLINT_BIN, else the debug build, else the release build."""
    if os.environ.get("GLINT_BIN"):
        return os.environ["GLINT_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/glint-target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "glint"
        if candidate.is_file():
            return str(candidate)
    pytest.fail(f"no glint binary: set GLINT_BIN or build it (cargo build -p glint-server); looked in {target}")


def load_fixture(name: str, workspace: pathlib.Path) -> dict[str, Any]:
    """A captured client with its placeholders filled in for `workspace`."""
    text = (HERE / "fixtures" / f"{name}.json").read_text(encoding="utf-8")
    text = text.replace("$WORKSPACE_NAME", workspace.name).replace("$WORKSPACE", str(workspace))
    text = text.replace("$CAPTURE_DIR", str(workspace.parent))
    return json.loads(text)


class RecordingProtocol(LanguageClientProtocol):
    """pytest-lsp's client protocol, keeping each response message as it came off the wire, and
    sending `initialize` params verbatim (not round-tripped through lsprotocol's types)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw_responses: dict[Any, dict[str, Any]] = {}

    def structure_message(self, data):
        if isinstance(data, dict) and "id" in data and "method" not in data:
            # pygls' hooks replace nested objects in place; keep the wire form.
            self.raw_responses[data["id"]] = copy.deepcopy(data)
        return super().structure_message(data)

    def get_message_type(self, method: str):
        if method == types.INITIALIZE:
            return None
        return super().get_message_type(method)


def make_client() -> LanguageClient:
    client = LanguageClient(protocol_cls=RecordingProtocol, converter_factory=default_converter)
    register_lsp_features(client)
    client.progress_texts = []

    @client.feature("glint/inlineCompletionProgress")
    def inline_progress(params):
        # Glint's documented streaming notification (docs/lsp-extensions.md), kept for checks.
        client.progress_texts.append(params)

    return client


def structure_strictly(raw: dict[str, Any], method: str) -> Any:
    """Structures a raw response message into the method's LSP 3.18 response type with a fresh
    lsprotocol converter, so a missing or mistyped field fails here with lsprotocol's message."""
    response_type = types.METHOD_TO_TYPES[method][1]
    assert "error" not in raw, f"{method} answered an error: {raw['error']}"
    return get_converter().structure(raw, response_type).result


def offset(text: str, encoding: str) -> int:
    """The length of `text` in the units of a position encoding."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def position_of(text: str, index: int, encoding: str) -> types.Position:
    """The LSP position of the str index `index` in `text`."""
    before = text[:index]
    line = before.count("\n")
    start = before.rfind("\n") + 1
    return types.Position(line=line, character=offset(text[start:index], encoding))


def check_range(text: str, rng: types.Range, encoding: str) -> None:
    """A range must lie in the document and not split a character in `encoding`."""
    lines = text.split("\n")
    for pos in (rng.start, rng.end):
        assert 0 <= pos.line < len(lines), f"line {pos.line} is outside the document"
        line = lines[pos.line]
        valid = {offset(line[:i], encoding) for i in range(len(line) + 1)}
        assert pos.character in valid, f"character {pos.character} splits a character of {line!r} in {encoding}"
    assert (rng.start.line, rng.start.character) <= (rng.end.line, rng.end.character), f"inverted range {rng}"


class Session:
    """One `glint lsp` process driven by one captured client."""

    def __init__(self, name: str, workspace: pathlib.Path, engine: str):
        self.name = name
        self.workspace = workspace
        self.engine = engine
        self.fixture = load_fixture(name, workspace)
        self.params: dict[str, Any] = self.fixture["initialize"]
        self.capabilities: types.ClientCapabilities = get_converter().structure(
            self.params["capabilities"], types.ClientCapabilities
        )
        self.client: LanguageClient | None = None
        self.result: types.InitializeResult | None = None
        self.raw_initialize: dict[str, Any] = {}
        self.versions: dict[str, int] = {}

    # Startup and teardown.

    async def start(self) -> None:
        config = ClientServerConfig(
            server_command=[glint_binary(), "lsp", "--engine", self.engine],
            client_factory=make_client,
            server_env={**os.environ, "RUST_BACKTRACE": "1"},
        )
        self.client = await config.start()
        self.client.capabilities = self.capabilities
        params = dict(self.params)
        params["processId"] = os.getpid()
        result, raw = await self.request(types.INITIALIZE, params)
        self.result = result
        self.raw_initialize = raw
        self.client.initialized(types.InitializedParams())
        # Clients that push their settings after `initialized` (Helix) do it here too.
        for change in self.fixture.get("didChangeConfiguration") or []:
            self.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings=change.get("settings"))
            )
        await self.wait_engine_ready()

    async def wait_engine_ready(self) -> None:
        """Completions answer null while the engine loads; the fake one is ready at once."""
        for _ in range(200):
            _, raw = await self.request("glint/status", None)
            state = ((raw.get("result") or {}).get("engine") or {}).get("state")
            if state == "ready":
                return
            assert state in ("none", "loading"), f"engine state {state!r}: {raw.get('result')}"
            await asyncio.sleep(0.05)
        pytest.fail("the fake engine did not become ready")

    async def close(self) -> None:
        client = self.client
        if client is None:
            return
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()
        await client.stop()

    # Messages.

    async def request(self, method: str, params: Any) -> tuple[Any, dict[str, Any]]:
        """Sends a request; returns pygls' structured result (None for an error) and the raw
        response message."""
        return await self.finish(await self.send(method, params))

    async def send(self, method: str, params: Any) -> tuple[str, Any]:
        """Sends a request without waiting for its answer; `finish` waits."""
        assert self.client is not None
        protocol = self.client.protocol
        msg_id = str(uuid.uuid4())
        task = asyncio.ensure_future(protocol.send_request_async(method, params, msg_id=msg_id))
        # The coroutine writes the request on its first step; let it, so that what the test
        # sends next goes after it.
        while msg_id not in protocol._request_futures and msg_id not in protocol.raw_responses and not task.done():
            await asyncio.sleep(0)
        return msg_id, task

    async def finish(self, pending: tuple[str, Any]) -> tuple[Any, dict[str, Any]]:
        assert self.client is not None
        msg_id, future = pending
        try:
            result = await asyncio.wait_for(future, REQUEST_LIMIT_S)
        except Exception:
            # An error response is a result for these tests; anything else (a hang, a dead
            # server) is a failure.
            if msg_id not in self.client.protocol.raw_responses:
                raise
            result = None
        raw = self.client.protocol.raw_responses.pop(msg_id)
        return result, raw

    def cancel(self, msg_id: str) -> None:
        assert self.client is not None
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    @property
    def encoding(self) -> str:
        assert self.result is not None
        return self.result.capabilities.position_encoding or "utf-16"

    def uri(self, file: str) -> str:
        return (self.workspace / file).as_uri()

    def open(self, file: str, text: str, language: str = "python") -> str:
        assert self.client is not None
        (self.workspace / file).write_text(text, encoding="utf-8")
        uri = self.uri(file)
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
            )
        )
        return uri

    def change(self, uri: str, rng: types.Range, text: str) -> int:
        """An incremental change; returns the new version."""
        assert self.client is not None
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)],
            )
        )
        return self.versions[uri]

    async def document_state(self, uri: str) -> dict[str, Any]:
        _, raw = await self.request("glint/documentState", {"uri": uri})
        assert "error" not in raw, raw
        return raw["result"]

    async def shutdown(self) -> dict[str, Any]:
        """`shutdown` then `exit`; returns the raw shutdown response. The server must then exit."""
        assert self.client is not None
        _, raw = await self.request(types.SHUTDOWN, None)
        self.client.exit(None)
        return raw


@pytest.fixture(params=FIXTURES)
def client_name(request) -> str:
    return request.param


@pytest_asyncio.fixture
async def glint(client_name, tmp_path):
    """Starts `glint lsp --engine ENGINE` as the captured client `client_name`; closes it after."""
    sessions: list[Session] = []

    async def start(engine: str = "fake:me") -> Session:
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        session = Session(client_name, workspace, engine)
        sessions.append(session)
        await session.start()
        return session

    yield start
    for session in sessions:
        error = session.client.error if session.client else None
        await session.close()
        assert error is None, f"the client saw a protocol error: {error}"


def pytest_terminal_summary(terminalreporter):
    """One line with the counts, for editors/test.sh."""
    stats = terminalreporter.stats

    def count(key: str) -> int:
        return len(stats.get(key, []))

    terminalreporter.write_line(
        f"conformance: {count('passed')} passed, {count('failed') + count('error')} failed, "
        f"{count('skipped')} skipped, {count('xfailed')} xfailed"
    )
