//! The HTTP engine: completions from an existing inference server (vLLM, SGLang, TGI, llama.cpp's
//! server, Ollama) over its HTTP API, streamed as they decode.
//!
//! Three APIs are spoken:
//! - `openai-completions`: `POST {url}/completions` with `stream: true` (server-sent events). The API
//!   has no `suffix` parameter, so Glint renders the prompt itself with one of its templates: the
//!   `fim` setting names the model's fill-in-the-middle family, `none` (the default) sends the
//!   prefix only. Instructions are rendered with ChatML.
//! - `llama-infill`: llama.cpp's `POST /infill` with `input_prefix`, `input_suffix` and `input_extra`
//!   (the snippets); the server applies the model's FIM tokens. Instructions go to `/completion`.
//! - `ollama`: `POST /api/generate` with `stream: true` (newline-delimited JSON), `raw` when Glint
//!   renders the prompt itself, and Ollama's `suffix` when it does not.
//!
//! One `reqwest::Client` per engine keeps connections alive and pooled, so a completion does not
//! pay for a TCP (or TLS) handshake. Requests run on the engine's own small runtime, so callers
//! need none. Dropping the `Generation` drops the HTTP response, which closes its connection: the
//! server sees the disconnect and stops decoding.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::prompt::{Piece, PromptFormat, Template};
use crate::{
    Engine, EngineError, EngineInfo, Finish, FinishReason, GenerateRequest, Generation, GenerationSender, Task, Timings,
};

/// The HTTP APIs the engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpApi {
    /// OpenAI-compatible `/v1/completions` (vLLM, SGLang, TGI, llama.cpp, hosted endpoints).
    #[default]
    OpenAiCompletions,
    /// llama.cpp's `/infill`.
    LlamaInfill,
    /// Ollama's `/api/generate`.
    Ollama,
}

impl HttpApi {
    /// The names accepted by the `api` setting.
    pub const NAMES: &'static [&'static str] = &["openai-completions", "llama-infill", "ollama"];

    pub fn parse(name: &str) -> Result<HttpApi, EngineError> {
        match name {
            "openai-completions" | "openai" => Ok(HttpApi::OpenAiCompletions),
            "llama-infill" | "infill" => Ok(HttpApi::LlamaInfill),
            "ollama" => Ok(HttpApi::Ollama),
            other => {
                Err(EngineError::Http(format!("unknown HTTP API `{other}` (known: {})", HttpApi::NAMES.join(", "))))
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HttpApi::OpenAiCompletions => "openai-completions",
            HttpApi::LlamaInfill => "llama-infill",
            HttpApi::Ollama => "ollama",
        }
    }
}

/// FIM template families accepted by the `fim` setting, besides `none`.
pub const FIM_NAMES: &[&str] = &["none", "qwen", "starcoder", "deepseek", "codellama"];

/// How to reach the server and what to ask it. Its `Debug` never shows the API key.
#[derive(Clone)]
pub struct HttpConfig {
    /// `http(s)://host:port/v1` for `openai-completions`; the server's root for the others (a
    /// trailing `/v1` is ignored there).
    pub url: String,
    pub api: HttpApi,
    /// The FIM template family Glint renders prompts with: `none` (prefix only), `qwen`,
    /// `starcoder`, `deepseek`, `codellama` (and the variants `prompt::TEMPLATE_NAMES` lists).
    pub fim: String,
    /// The API's `model` field; llama.cpp's server ignores it, Ollama requires it.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer`. See [`HttpConfig::api_key_from_env`].
    pub api_key: Option<String>,
    /// The served model's context, for sizing prompts.
    pub context_length: usize,
    pub connect_timeout: Duration,
    /// The longest a request may take when it has no `deadline_ms` of its own.
    pub timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            url: String::new(),
            api: HttpApi::default(),
            fim: "none".into(),
            model: None,
            api_key: None,
            context_length: 4096,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &self.url)
            .field("api", &self.api)
            .field("fim", &self.fim)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("context_length", &self.context_length)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The host of `url` when it is plain `http://` or `ws://` to a host other than this machine:
/// a credential sent there crosses the network in the clear.
pub(crate) fn cleartext_remote_host(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "ws") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare.ends_with(".localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some(host)
}

impl HttpConfig {
    /// The API key from environment variable `var`, when it is set and not empty.
    pub fn api_key_from_env(var: &str) -> Option<String> {
        std::env::var(var).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty())
    }
}

/// An engine backed by a remote inference server over HTTP.
pub struct HttpEngine {
    inner: Arc<Inner>,
    /// Owned so that requests work from any caller; shut down in the background on drop, which is
    /// allowed inside another runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

struct Inner {
    client: reqwest::Client,
    config: HttpConfig,
    /// The server's base URL without a trailing slash.
    base: String,
    format: PromptFormat,
}

impl HttpEngine {
    /// Checks the configuration and builds the client; contacts nobody yet.
    pub fn new(config: HttpConfig) -> Result<HttpEngine, EngineError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| EngineError::Http(format!("invalid engine URL `{}`: {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EngineError::Http(format!("engine URL `{}` must start with http:// or https://", config.url)));
        }
        let format = fim_format(&config.fim)?;
        if config.api == HttpApi::Ollama && config.model.is_none() {
            return Err(EngineError::Http("the `ollama` API needs the `model` setting (an Ollama model name)".into()));
        }
        if config.api_key.is_some()
            && let Some(host) = cleartext_remote_host(&config.url)
        {
            return Err(EngineError::Http(format!(
                "refusing to send the API key (the `apiKeyEnv` variable) over plain http:// to `{host}`: \
                 use https:// in the `engine` setting, or a server on this machine"
            )));
        }
        // No redirects: a redirect would carry the bearer token (and the document text) to
        // wherever the server points, and a completion server has no reason to redirect.
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("glint/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = &config.api_key {
            let mut headers = reqwest::header::HeaderMap::new();
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| EngineError::Http("the API key holds characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
            client = client.default_headers(headers);
        }
        let client = client.build().map_err(|e| EngineError::Http(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("glint-http")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Http(format!("cannot start the HTTP runtime: {e}")))?;
        let base = config.url.trim_end_matches('/').to_string();
        Ok(HttpEngine { inner: Arc::new(Inner { client, config, base, format }), runtime: Some(runtime) })
    }

    /// The URL a request is posted to.
    pub fn endpoint(&self, task: &Task) -> String {
        self.inner.endpoint(task)
    }

    /// The JSON body a request is posted with; a pure function of the configuration and request.
    pub fn body(&self, request: &GenerateRequest) -> Value {
        self.inner.body(request)
    }
}

impl Drop for HttpEngine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Engine for HttpEngine {
    fn generate(&self, request: GenerateRequest) -> Generation {
        let (generation, sender) = Generation::channel();
        let Some(runtime) = &self.runtime else {
            return Generation::failed("the HTTP engine has shut down");
        };
        runtime.spawn(produce(Arc::clone(&self.inner), request, sender));
        generation
    }

    fn info(&self) -> EngineInfo {
        let config = &self.inner.config;
        let fim = match config.api {
            HttpApi::LlamaInfill | HttpApi::Ollama => true,
            HttpApi::OpenAiCompletions => self.inner.format.fim(),
        };
        EngineInfo {
            kind: "http".into(),
            model: config.model.clone().unwrap_or_else(|| format!("{} ({})", self.inner.base, config.api.name())),
            context_length: config.context_length,
            fim,
        }
    }
}

/// The prompt format for a `fim` setting: the named template, ChatML for instructions.
fn fim_format(name: &str) -> Result<PromptFormat, EngineError> {
    let name = if name.is_empty() { "none" } else { name };
    // The remote model's vocabulary is unknown here, so every control token is taken to exist.
    PromptFormat::detect(|_| true, Some(name))
        .map(|format| PromptFormat { template: format.template, chatml: true })
        .map_err(|e| EngineError::Http(format!("setting `fim`: {e}; use one of {}", FIM_NAMES.join(", "))))
}

/// Pieces as one string: control tokens as their text, which servers tokenize as special tokens.
fn flatten(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.as_str(),
            Piece::Token(token) => token,
        })
        .collect()
}

impl Inner {
    fn endpoint(&self, task: &Task) -> String {
        let root = self.base.strip_suffix("/v1").unwrap_or(&self.base);
        match (self.config.api, task) {
            (HttpApi::OpenAiCompletions, _) if self.base.ends_with("/completions") => self.base.clone(),
            (HttpApi::OpenAiCompletions, _) => format!("{}/completions", self.base),
            (HttpApi::LlamaInfill, Task::Complete) => format!("{root}/infill"),
            (HttpApi::LlamaInfill, Task::Instruct { .. }) => format!("{root}/completion"),
            (HttpApi::Ollama, _) => format!("{root}/api/generate"),
        }
    }

    /// The prompt Glint renders for `request` (prefix-only or FIM; ChatML for instructions).
    fn prompt(&self, request: &GenerateRequest) -> String {
        flatten(&self.format.render(request))
    }

    fn body(&self, request: &GenerateRequest) -> Value {
        let sampling = &request.sampling;
        let stop: Vec<&str> = request.stop.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        let mut body = match self.config.api {
            HttpApi::OpenAiCompletions => {
                // OpenAI's own API takes at most four stop sequences; the rest are applied here.
                let stop: Vec<&str> = stop.iter().copied().take(4).collect();
                json!({
                    "prompt": self.prompt(request),
                    "max_tokens": request.max_tokens,
                    "temperature": sampling.temperature,
                    "stream": true,
                    "stop": stop,
                })
            }
            HttpApi::LlamaInfill => {
                let mut body = json!({
                    "n_predict": request.max_tokens,
                    "temperature": sampling.temperature,
                    "stream": true,
                    "stop": stop,
                    "cache_prompt": true,
                });
                match &request.task {
                    Task::Complete => {
                        let extra: Vec<Value> =
                            request.snippets.iter().map(|s| json!({"filename": s.path, "text": s.text})).collect();
                        body["input_prefix"] = json!(request.prefix);
                        body["input_suffix"] = json!(request.suffix);
                        body["input_extra"] = json!(extra);
                        body["prompt"] = json!("");
                    }
                    Task::Instruct { .. } => body["prompt"] = json!(self.prompt(request)),
                }
                body
            }
            HttpApi::Ollama => {
                let mut options = json!({"num_predict": request.max_tokens, "temperature": sampling.temperature});
                if !stop.is_empty() {
                    options["stop"] = json!(stop);
                }
                let glint_renders = self.format.fim() || matches!(request.task, Task::Instruct { .. });
                let mut body = json!({"stream": true});
                if glint_renders || request.suffix.is_empty() {
                    body["prompt"] = json!(self.prompt(request));
                    body["raw"] = json!(true);
                } else {
                    // Ollama renders the model's own FIM template from `suffix`; it refuses `raw`
                    // together with a suffix.
                    body["prompt"] = json!(self.prompt(request));
                    body["suffix"] = json!(request.suffix);
                    body["raw"] = json!(false);
                }
                body["options"] = options;
                body
            }
        };
        let extras = match self.config.api {
            HttpApi::Ollama => &mut body["options"],
            _ => &mut body,
        };
        if let Some(top_p) = sampling.top_p {
            extras["top_p"] = json!(top_p);
        }
        if let Some(top_k) = sampling.top_k {
            extras["top_k"] = json!(top_k);
        }
        if sampling.temperature > 0.0 {
            extras["seed"] = json!(sampling.seed);
        }
        if let Some(model) = &self.config.model {
            body["model"] = json!(model);
        }
        body
    }
}

/// What one streamed event says.
#[derive(Debug, Default, PartialEq)]
struct Event {
    text: String,
    finish: Option<FinishReason>,
    prompt_tokens: Option<usize>,
    error: Option<String>,
}

/// Reads one event's JSON in the shape of `api`.
fn parse_event(api: HttpApi, value: &Value) -> Event {
    let mut event = Event::default();
    if let Some(error) = value.get("error") {
        event.error = Some(match error {
            Value::String(message) => message.clone(),
            other => other.get("message").and_then(Value::as_str).map_or_else(|| other.to_string(), str::to_string),
        });
        return event;
    }
    match api {
        HttpApi::OpenAiCompletions => {
            let choice = &value["choices"][0];
            event.text = choice["text"].as_str().unwrap_or_default().to_string();
            event.finish = match choice["finish_reason"].as_str() {
                Some("length") => Some(FinishReason::Length),
                Some(_) => Some(FinishReason::Stop),
                None => None,
            };
            event.prompt_tokens = value["usage"]["prompt_tokens"].as_u64().map(|n| n as usize);
        }
        HttpApi::LlamaInfill => {
            event.text = value["content"].as_str().unwrap_or_default().to_string();
            if value["stop"].as_bool() == Some(true) {
                let limit = value["stopped_limit"].as_bool() == Some(true)
                    || value["stop_type"].as_str() == Some("limit")
                    || value["truncated"].as_bool() == Some(true) && value["stopped_eos"].as_bool() != Some(true);
                event.finish = Some(if limit { FinishReason::Length } else { FinishReason::Stop });
            }
            event.prompt_tokens = value["tokens_evaluated"]
                .as_u64()
                .or_else(|| value["timings"]["prompt_n"].as_u64())
                .map(|n| n as usize);
        }
        HttpApi::Ollama => {
            event.text = value["response"].as_str().unwrap_or_default().to_string();
            if value["done"].as_bool() == Some(true) {
                event.finish = Some(match value["done_reason"].as_str() {
                    Some("length") => FinishReason::Length,
                    _ => FinishReason::Stop,
                });
            }
            event.prompt_tokens = value["prompt_eval_count"].as_u64().map(|n| n as usize);
        }
    }
    event
}

/// Applies stop sequences to streamed text, holding back a tail that could still become one, so
/// that a stop string is never streamed even when the server ignores `stop`.
#[derive(Debug, Default)]
struct StopFilter {
    stops: Vec<String>,
    pending: String,
}

impl StopFilter {
    fn new(stops: &[String]) -> StopFilter {
        StopFilter { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    /// Adds `text`; returns what may be streamed now and whether a stop sequence ended the text.
    fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Keep the longest tail of `pending` that begins some stop sequence.
        let mut keep = 0;
        for stop in &self.stops {
            for (i, _) in self.pending.char_indices() {
                let tail = &self.pending[i..];
                if stop.starts_with(tail) {
                    keep = keep.max(tail.len());
                    break;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// What is left once the stream ends without a stop.
    fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

type Payloads = Pin<Box<dyn Stream<Item = Result<String, String>> + Send>>;

/// The longest line a response may hold: one SSE field, one SSE event's data, or one NDJSON
/// document. A streamed token is a few hundred bytes; a megabyte is a broken or hostile server.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The most bytes one response body may hold, streamed or not.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// The response body as a stream of JSON payloads: SSE `data:` fields, or NDJSON lines for Ollama.
/// A server that ignores `stream: true` and answers one JSON document gives one payload. Lines
/// over [`MAX_LINE_BYTES`] and bodies over [`MAX_RESPONSE_BYTES`] end the stream with an error.
fn payloads(api: HttpApi, response: reqwest::Response) -> Payloads {
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let whole_document = api != HttpApi::Ollama && content_type.is_some_and(|t| t.starts_with("application/json"));
    let mut lines = Lines::new(response);
    if whole_document {
        return Box::pin(futures::stream::once(async move { lines.rest().await }));
    }
    let sse = api != HttpApi::Ollama;
    Box::pin(futures::stream::unfold(Some(lines), move |lines| async move {
        let mut lines = lines?;
        let payload = if sse { lines.next_event().await } else { lines.next_ndjson().await };
        match payload {
            // After an error the stream ends: what follows a broken line cannot be trusted.
            Some(Err(message)) => Some((Err(message), None)),
            Some(Ok(payload)) => Some((Ok(payload), Some(lines))),
            None => None,
        }
    }))
}

/// A response body read line by line within the limits. Each byte is scanned for a newline once:
/// `scanned` remembers how far the current line was searched, and consumed lines are only
/// dropped from the buffer's front when that is at least half of it, so a body of many short
/// lines and one of a single endless line both cost linear time.
struct Lines {
    body: reqwest::Response,
    buffer: Vec<u8>,
    /// Where the current (unfinished) line starts in `buffer`.
    start: usize,
    /// How far past `start` the search for a newline has got.
    scanned: usize,
    /// Bytes received so far.
    total: usize,
    ended: bool,
}

impl Lines {
    fn new(body: reqwest::Response) -> Lines {
        Lines { body, buffer: Vec::new(), start: 0, scanned: 0, total: 0, ended: false }
    }

    /// The next line without its `\n` (or `\r\n`); the last one may lack the newline.
    async fn next_line(&mut self) -> Option<Result<String, String>> {
        loop {
            let from = self.start + self.scanned;
            if let Some(at) = self.buffer[from..].iter().position(|&b| b == b'\n') {
                let end = from + at;
                let line = &self.buffer[self.start..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > MAX_LINE_BYTES {
                    return Some(Err(line_too_long()));
                }
                let line = String::from_utf8_lossy(line).into_owned();
                self.start = end + 1;
                self.scanned = 0;
                return Some(Ok(line));
            }
            self.scanned = self.buffer.len() - self.start;
            if self.scanned > MAX_LINE_BYTES {
                return Some(Err(line_too_long()));
            }
            if self.ended {
                if self.scanned == 0 {
                    return None;
                }
                let line = String::from_utf8_lossy(&self.buffer[self.start..]).into_owned();
                self.start = self.buffer.len();
                self.scanned = 0;
                return Some(Ok(line));
            }
            if let Err(message) = self.fill().await {
                return Some(Err(message));
            }
        }
    }

    /// Reads one more piece of the body into the buffer; `ended` once there is none.
    async fn fill(&mut self) -> Result<(), String> {
        match self.body.chunk().await {
            Ok(Some(chunk)) => {
                self.total += chunk.len();
                if self.total > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "the response is longer than {} MiB; it was cut off",
                        MAX_RESPONSE_BYTES >> 20
                    ));
                }
                if self.start > 0 && self.start * 2 >= self.buffer.len() {
                    self.buffer.drain(..self.start);
                    self.start = 0;
                }
                self.buffer.extend_from_slice(&chunk);
                Ok(())
            }
            Err(e) => Err(format!("reading the response: {}", error_chain(&e))),
            Ok(None) => {
                self.ended = true;
                Ok(())
            }
        }
    }

    /// The next non-empty NDJSON line.
    async fn next_ndjson(&mut self) -> Option<Result<String, String>> {
        loop {
            match self.next_line().await? {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => return Some(Ok(line.trim().to_string())),
                Err(message) => return Some(Err(message)),
            }
        }
    }

    /// The data of the next SSE event that has any: its `data:` fields joined by newlines, sent
    /// at the blank line that ends the event (or at the body's end). Other fields and comments
    /// are skipped.
    async fn next_event(&mut self) -> Option<Result<String, String>> {
        let mut data: Option<String> = None;
        loop {
            let line = match self.next_line().await {
                None => return data.map(Ok),
                Some(Err(message)) => return Some(Err(message)),
                Some(Ok(line)) => line,
            };
            if line.is_empty() {
                match data.take() {
                    Some(data) => return Some(Ok(data)),
                    None => continue,
                }
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            if field != "data" {
                continue;
            }
            let value = value.strip_prefix(' ').unwrap_or(value);
            let data = data.get_or_insert_with(String::new);
            if !data.is_empty() {
                data.push('\n');
            }
            if data.len() + value.len() > MAX_LINE_BYTES {
                return Some(Err(line_too_long()));
            }
            data.push_str(value);
        }
    }

    /// The whole body as text, for a server that answers one JSON document.
    async fn rest(&mut self) -> Result<String, String> {
        while !self.ended {
            self.fill().await?;
        }
        Ok(String::from_utf8_lossy(&self.buffer[self.start..]).into_owned())
    }
}

fn line_too_long() -> String {
    format!("a line of the response is longer than {} MiB; it was cut off", MAX_LINE_BYTES >> 20)
}

/// How a generation ended, before it becomes a `Finish`.
enum Outcome {
    Finished(FinishReason),
    Cancelled,
    Failed(String),
}

/// What was streamed so far, for the timings.
#[derive(Default)]
struct Progress {
    prompt_tokens: Option<usize>,
    first_text: Option<Duration>,
    events: usize,
}

const ERROR_BODY_CHARS: usize = 400;

async fn produce(inner: Arc<Inner>, request: GenerateRequest, sender: GenerationSender) {
    let started = Instant::now();
    let limit = request.deadline_ms.map(Duration::from_millis).unwrap_or(inner.config.timeout);
    let mut progress = Progress::default();
    let mut rest = None;
    let outcome = tokio::select! {
        biased;
        () = sender.cancelled() => Outcome::Cancelled,
        result = tokio::time::timeout(limit, stream(&inner, &request, &sender, &mut progress, started, &mut rest)) => {
            match result {
                Ok(outcome) => outcome,
                Err(_) if request.deadline_ms.is_some() => Outcome::Finished(FinishReason::Deadline),
                Err(_) => Outcome::Failed(format!(
                    "{} gave no complete answer within {} s",
                    inner.endpoint(&request.task),
                    limit.as_secs()
                )),
            }
        }
    };
    // By now an unfinished response (and with it its connection) has been dropped; one whose
    // answer ended before its last bytes is in `rest`.
    let (reason, error) = match outcome {
        Outcome::Finished(reason) => (reason, None),
        Outcome::Cancelled => (FinishReason::Cancelled, None),
        Outcome::Failed(message) => (FinishReason::Error, Some(message)),
    };
    if let Some(message) = &error {
        tracing::debug!("http engine: {message}");
    }
    let total = started.elapsed();
    let ttft = progress.first_text.unwrap_or_default();
    let decode_secs = (total - ttft).as_secs_f64();
    sender.finish(Finish {
        reason,
        error,
        timings: Timings {
            prompt_tokens: progress
                .prompt_tokens
                .unwrap_or_else(|| crate::estimate_tokens(&request.prefix) + crate::estimate_tokens(&request.suffix)),
            cached_tokens: 0,
            prefill_ms: ttft.as_secs_f64() * 1e3,
            ttft_ms: ttft.as_secs_f64() * 1e3,
            decode_tokens: progress.events,
            decode_tokens_per_s: if decode_secs > 0.0 { progress.events as f64 / decode_secs } else { 0.0 },
            total_ms: total.as_secs_f64() * 1e3,
        },
    });
    // The answer is out; the end of the response (the chunked body's last bytes, usually already
    // read) is read now, so the connection goes back to the pool instead of being closed.
    if let Some(mut rest) = rest {
        let _ = tokio::time::timeout(DRAIN_LIMIT, async { while rest.next().await.is_some() {} }).await;
    }
}

/// How long the end of an answered response may take before its connection is given up.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Streams one response into `sender`. When the answer ends before the response does (`[DONE]`,
/// a final event), what is left of it goes to `rest`, to be read to its end after the consumer
/// has its answer: only a response read to its end gives its connection back to the pool.
async fn stream(
    inner: &Inner,
    request: &GenerateRequest,
    sender: &GenerationSender,
    progress: &mut Progress,
    started: Instant,
    rest: &mut Option<Payloads>,
) -> Outcome {
    let url = inner.endpoint(&request.task);
    let response = match inner.client.post(&url).json(&inner.body(request)).send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(format!("cannot reach {url}: {}", error_chain(&e))),
    };
    let status = response.status();
    if !status.is_success() {
        let body = tokio::time::timeout(Duration::from_secs(2), error_body(response)).await;
        let body = match body {
            Ok(Some(body)) => truncate(body.trim(), ERROR_BODY_CHARS),
            _ => "(no body)".into(),
        };
        return Outcome::Failed(format!("{url} answered HTTP {status}: {body}"));
    }
    let api = inner.config.api;
    let mut payloads = payloads(api, response);
    let mut stops = StopFilter::new(&request.stop);
    let mut reason = None;
    while let Some(payload) = payloads.next().await {
        let payload = match payload {
            Ok(payload) => payload,
            Err(message) => return Outcome::Failed(format!("{url}: {message}")),
        };
        let payload = payload.trim();
        if payload.is_empty() {
            continue;
        }
        if payload == "[DONE]" {
            *rest = Some(payloads);
            break;
        }
        let value: Value = match serde_json::from_str(payload) {
            Ok(value) => value,
            Err(e) => {
                return Outcome::Failed(format!(
                    "{url} sent an event that is not JSON ({e}): {}",
                    truncate(payload, 200)
                ));
            }
        };
        let event = parse_event(api, &value);
        if let Some(message) = event.error {
            return Outcome::Failed(format!("{url} reported an error: {}", truncate(&message, ERROR_BODY_CHARS)));
        }
        if event.prompt_tokens.is_some() {
            progress.prompt_tokens = event.prompt_tokens;
        }
        if !event.text.is_empty() {
            progress.first_text.get_or_insert_with(|| started.elapsed());
            progress.events += 1;
            let (text, stopped) = stops.push(&event.text);
            if !sender.send_text(text) {
                return Outcome::Cancelled;
            }
            if stopped {
                return Outcome::Finished(FinishReason::Stop);
            }
        }
        if let Some(finish) = event.finish {
            reason = Some(finish);
            if api != HttpApi::OpenAiCompletions {
                *rest = Some(payloads);
                break;
            }
        }
    }
    if !sender.send_text(stops.flush()) {
        return Outcome::Cancelled;
    }
    Outcome::Finished(reason.unwrap_or(FinishReason::Stop))
}

/// The start of an error response's body: enough for the message, never more than a few
/// kilobytes however much the server sends.
async fn error_body(mut response: reqwest::Response) -> Option<String> {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) if !body.is_empty() => break,
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// An error with its causes, which say what actually failed (refused, timed out, DNS...).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The template a `fim` name selects, for display and tests.
pub fn fim_template(name: &str) -> Result<Template, EngineError> {
    fim_format(name).map(|f| f.template)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Sampling, Snippet};

    fn engine(api: HttpApi, fim: &str) -> HttpEngine {
        HttpEngine::new(HttpConfig {
            url: "http://127.0.0.1:9/v1".into(),
            api,
            fim: fim.into(),
            model: Some("m".into()),
            ..HttpConfig::default()
        })
        .unwrap()
    }

    fn request() -> GenerateRequest {
        GenerateRequest {
            prefix: "fn a() {\n    ".into(),
            suffix: "\n}\n".into(),
            snippets: vec![Snippet { path: "src/b.rs".into(), text: "fn b() {}".into() }],
            language: Some("rust".into()),
            max_tokens: 16,
            stop: vec!["\n".into()],
            ..GenerateRequest::default()
        }
    }

    #[test]
    fn endpoints_follow_the_api() {
        let openai = engine(HttpApi::OpenAiCompletions, "none");
        assert_eq!(openai.endpoint(&Task::Complete), "http://127.0.0.1:9/v1/completions");
        let infill = engine(HttpApi::LlamaInfill, "none");
        assert_eq!(infill.endpoint(&Task::Complete), "http://127.0.0.1:9/infill");
        let instruct = Task::Instruct { system: String::new(), instruction: "x".into() };
        assert_eq!(infill.endpoint(&instruct), "http://127.0.0.1:9/completion");
        assert_eq!(engine(HttpApi::Ollama, "none").endpoint(&Task::Complete), "http://127.0.0.1:9/api/generate");
    }

    #[test]
    fn openai_bodies_carry_the_rendered_prompt_and_the_sampling() {
        let body = engine(HttpApi::OpenAiCompletions, "starcoder").body(&GenerateRequest {
            sampling: Sampling { temperature: 0.5, top_p: Some(0.9), seed: 7, ..Sampling::default() },
            ..request()
        });
        assert_eq!(
            body["prompt"],
            "<fim_prefix><fim_suffix>\n}\n<fim_middle>// Path: src/b.rs\n// fn b() {}\n//\nfn a() {\n    "
        );
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(body["stop"], json!(["\n"]));
        assert_eq!(body["top_p"], json!(0.9f32));
        assert_eq!(body["seed"], 7);
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn instructions_use_chatml_whatever_the_fim_family() {
        let r = GenerateRequest {
            prefix: "fn a() {}".into(),
            task: Task::Instruct { system: "S".into(), instruction: "Document a.".into() },
            ..GenerateRequest::default()
        };
        let prompt = engine(HttpApi::OpenAiCompletions, "none").body(&r)["prompt"].as_str().unwrap().to_string();
        assert!(prompt.starts_with("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"), "{prompt}");
        assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    }

    #[test]
    fn unknown_fim_families_and_apis_are_named() {
        let bad = HttpEngine::new(HttpConfig { url: "http://x/v1".into(), fim: "gpt".into(), ..HttpConfig::default() });
        assert!(bad.err().unwrap().to_string().contains("`gpt`"));
        assert!(HttpApi::parse("grpc").unwrap_err().to_string().contains("openai-completions"));
        let tls = HttpEngine::new(HttpConfig { url: "https://api.example.invalid/v1".into(), ..HttpConfig::default() });
        assert_eq!(tls.unwrap().endpoint(&Task::Complete), "https://api.example.invalid/v1/completions");
        let bad = HttpEngine::new(HttpConfig { url: "ftp://x".into(), ..HttpConfig::default() });
        assert!(bad.err().unwrap().to_string().contains("http://"));
        let bad = HttpEngine::new(HttpConfig { url: "http://x".into(), api: HttpApi::Ollama, ..HttpConfig::default() });
        assert!(bad.err().unwrap().to_string().contains("model"));
    }

    #[test]
    fn events_of_each_api_are_read() {
        let openai = json!({"choices": [{"text": "ab", "finish_reason": null}]});
        assert_eq!(parse_event(HttpApi::OpenAiCompletions, &openai).text, "ab");
        let end = json!({"choices": [{"text": "", "finish_reason": "length"}], "usage": {"prompt_tokens": 12}});
        let end = parse_event(HttpApi::OpenAiCompletions, &end);
        assert_eq!((end.finish, end.prompt_tokens), (Some(FinishReason::Length), Some(12)));
        let infill = json!({"content": "", "stop": true, "stopped_limit": true, "tokens_evaluated": 5});
        assert_eq!(parse_event(HttpApi::LlamaInfill, &infill).finish, Some(FinishReason::Length));
        let ollama = json!({"response": "x", "done": true, "done_reason": "stop"});
        assert_eq!(parse_event(HttpApi::Ollama, &ollama).finish, Some(FinishReason::Stop));
        let error = json!({"error": {"message": "model not loaded"}});
        assert_eq!(parse_event(HttpApi::OpenAiCompletions, &error).error.as_deref(), Some("model not loaded"));
    }

    #[test]
    fn stop_sequences_are_never_streamed_even_split_across_chunks() {
        let mut filter = StopFilter::new(&["\n\n\n".into()]);
        assert_eq!(filter.push("a\n"), ("a".into(), false));
        assert_eq!(filter.push("\n"), ("".into(), false));
        assert_eq!(filter.push("b"), ("\n\nb".into(), false));
        assert_eq!(filter.push("\n\n\nc"), ("".into(), true));
        let mut filter = StopFilter::new(&["END".into()]);
        assert_eq!(filter.push("xxEN"), ("xx".into(), false));
        assert_eq!(filter.flush(), "EN");
    }

    #[test]
    fn dropping_the_engine_inside_a_runtime_does_not_panic() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { drop(engine(HttpApi::OpenAiCompletions, "qwen")) });
    }
}
