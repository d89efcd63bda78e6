//! What the transport to a remote engine costs per request, on loopback, with the same engine
//! behind each transport: one persistent WebSocket (`glint engine serve` and the `ws://` client
//! engine) against a fresh HTTP/1.1 connection per completion (as llm-ls does) and against pooled
//! keep-alive HTTP with SSE streaming. Overhead = client-side time to the first chunk minus the
//! engine's own time to its first token. The engine serves from a second process (this binary
//! run again), as `glint engine serve` does in deployment, and a bare TCP round trip to that
//! process is measured alongside as the floor no transport can beat. Requests are spaced a
//! millisecond apart, as keystrokes are. Prints p50/p99 and ratios; asserts nothing. Runs once in
//! plain text and once with TLS (`wss://` against `https://`, a self-signed certificate), since a
//! remote engine beyond loopback is reached over TLS, where a fresh connection also pays a TLS
//! handshake.
//!
//! `cargo bench -p glint-tests --bench remote_overhead` (`GLINT_BENCH_REQUESTS` sets the count for
//! the fast engine, default 1000; the real model section runs 50 when the model is fetched).

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::post;
use futures::StreamExt;
use glint_engine::ws::{ServeConfig, WsClientConfig, WsEngine};
use glint_engine::{
    Chunk, Engine, EngineInfo, Finish, FinishReason, GenerateRequest, Generation, LocalConfig, LocalEngine, fetch,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request's figures, in milliseconds.
#[derive(Clone, Copy)]
struct Sample {
    first_chunk_ms: f64,
    engine_ttft_ms: f64,
}

impl Sample {
    fn overhead_ms(&self) -> f64 {
        self.first_chunk_ms - self.engine_ttft_ms
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    WebSocket,
    PooledHttp,
    FreshHttp,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::WebSocket, Transport::PooledHttp, Transport::FreshHttp];

    fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket, one persistent connection",
            Transport::PooledHttp => "HTTP/1.1 keep-alive pool + SSE",
            Transport::FreshHttp => "HTTP/1.1 new connection per request + SSE",
        }
    }
}

/// Set in the child process that serves the engine: `instant`, or `model:PATH`.
const SERVE_ENV: &str = "GLINT_BENCH_SERVE";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match std::env::var(SERVE_ENV) {
        Ok(engine) => runtime.block_on(serve_child(&engine)),
        // On a worker thread, as an LSP request handler runs: `main` itself is outside the
        // runtime's workers, and every chunk would pay for waking it, whatever the transport.
        Err(_) => runtime.block_on(async { tokio::spawn(sections()).await? }),
    }
}

async fn sections() -> anyhow::Result<()> {
    let requests = std::env::var("GLINT_BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let request =
        GenerateRequest { prefix: "fn add(a: i32, b: i32) -> i32 {\n    ".into(), ..GenerateRequest::default() };
    let tls = Tls::generate()?;
    println!("## Instant engine, {requests} requests per transport (interleaved), loopback\n");
    run("instant", request.clone(), requests, 50, None).await?;
    println!("\n## Instant engine over TLS, {requests} requests per transport (interleaved), loopback\n");
    run("instant", request, requests, 50, Some(&tls)).await?;

    match fetch::resolve_model(None) {
        Ok(path) => {
            let request = GenerateRequest {
                prefix: "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    ".into(),
                suffix: "\n\nprint(fibonacci(10))\n".into(),
                language: Some("python".into()),
                max_tokens: 8,
                ..GenerateRequest::default()
            };
            println!("\n## Real model ({}), 50 requests per transport, end to end\n", path.display());
            run(&format!("model:{}", path.display()), request, 50, 5, None).await?;
        }
        Err(e) => println!("\nSKIP real model section: {e}"),
    }
    Ok(())
}

/// The engine's process, as `glint engine serve` and an HTTP engine server are in deployment:
/// serves `engine` over WebSocket, over HTTP + SSE and (for the floor) bare TCP, prints the three
/// ports on one line and serves until its standard input closes.
async fn serve_child(engine: &str) -> anyhow::Result<()> {
    let engine: Arc<dyn Engine> = match engine.strip_prefix("model:") {
        Some(path) => Arc::new(LocalEngine::load(
            std::path::Path::new(path),
            LocalConfig { threads: Some(1), ..LocalConfig::default() },
        )?),
        None => Arc::new(InstantEngine("let total = a + b;")),
    };
    let acceptor = match (std::env::var_os("GLINT_BENCH_CERT"), std::env::var_os("GLINT_BENCH_KEY")) {
        (Some(cert), Some(key)) => Some(glint_engine::ws::load_tls(cert.as_ref(), key.as_ref())?),
        _ => None,
    };
    let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ws_port = ws_listener.local_addr()?.port();
    let config = ServeConfig { tls: acceptor.clone(), ..ServeConfig::default() };
    let ws_engine = Arc::clone(&engine);
    tokio::spawn(async move {
        let _ = glint_engine::ws::serve(ws_listener, ws_engine, config, std::future::pending()).await;
    });
    let http_port = start_http(engine, acceptor).await?.port();
    let echo_port = start_echo().await?.port();
    println!("{ws_port} {http_port} {echo_port}");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    Ok(())
}

/// The engine's process, seen from the client's.
struct Servers {
    _child: tokio::process::Child,
    ws: u16,
    http: u16,
    echo: u16,
}

impl Servers {
    async fn start(engine: &str, tls: Option<&Tls>) -> anyhow::Result<Servers> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .env(SERVE_ENV, engine)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(tls) = tls {
            command.env("GLINT_BENCH_CERT", &tls.cert).env("GLINT_BENCH_KEY", &tls.key);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(120),
            tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut line),
        )
        .await??;
        let ports: Vec<u16> = line.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        let [ws, http, echo] = ports[..] else { anyhow::bail!("the engine process printed `{line}`, not three ports") };
        Ok(Servers { _child: child, ws, http, echo })
    }
}

/// The fastest possible engine: its whole answer is ready when `generate` returns, so whatever
/// time passes before the client sees it is the transport's. (The scripted `FakeEngine` starts a
/// thread per request, whose wake-up would be counted as transport overhead.)
struct InstantEngine(&'static str);

impl Engine for InstantEngine {
    fn generate(&self, _request: GenerateRequest) -> Generation {
        let (generation, sender) = Generation::channel();
        sender.send_text(self.0);
        sender.finish(Finish { reason: FinishReason::Stop, ..Finish::default() });
        generation
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { kind: "instant".into(), model: "instant".into(), context_length: 8192, fim: true }
    }
}

/// A self-signed certificate for `localhost`, in PEM files.
struct Tls {
    cert_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Tls {
    fn generate() -> anyhow::Result<Tls> {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let dir = std::env::temp_dir().join(format!("glint-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let cert_pem = certified.cert.pem();
        std::fs::write(&cert, &cert_pem)?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        Ok(Tls { cert_pem, cert, key })
    }
}

async fn run(
    engine: &str,
    request: GenerateRequest,
    requests: usize,
    warmup: usize,
    tls: Option<&Tls>,
) -> anyhow::Result<()> {
    let servers = Servers::start(engine, tls).await?;
    let host = if tls.is_some() { "localhost" } else { "127.0.0.1" };
    let ws_url = format!("{}://{host}:{}", if tls.is_some() { "wss" } else { "ws" }, servers.ws);
    let url = format!("{}://{host}:{}/generate", if tls.is_some() { "https" } else { "http" }, servers.http);
    let floor_addr = SocketAddr::from(([127, 0, 0, 1], servers.echo));
    let mut ws_config = WsClientConfig::new(ws_url);
    ws_config.ca_file = tls.map(|tls| tls.cert.clone());
    let ws = WsEngine::connect(ws_config)?;
    tokio::time::timeout(Duration::from_secs(10), ws.connected()).await?;
    let http_client = || -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = tls {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(tls.cert_pem.as_bytes())?);
        }
        Ok(builder)
    };
    let pooled = http_client()?.build()?;

    let probe = serde_json::to_vec(&request)?;
    let mut persistent_tcp = connect_echo(floor_addr).await?;

    let mut samples: [Vec<Sample>; 3] = Default::default();
    let mut floors: [Vec<f64>; 2] = Default::default();
    for i in 0..warmup + requests {
        for (slot, transport) in Transport::ALL.into_iter().enumerate() {
            let sample = match transport {
                Transport::WebSocket => over_ws(&ws, request.clone()).await?,
                Transport::PooledHttp => over_http(&pooled, &url, &request).await?,
                Transport::FreshHttp => {
                    // Built before the clock starts: only the new connection is measured.
                    let fresh = http_client()?.pool_max_idle_per_host(0).build()?;
                    over_http(&fresh, &url, &request).await?
                }
            };
            if i >= warmup {
                samples[slot].push(sample);
            }
            // Requests come a keystroke apart, not back to back: each starts on a quiet machine,
            // not while the previous one's connection is still being torn down.
            tokio::time::sleep(PAUSE).await;
        }
        let persistent = echo_round_trip(&mut persistent_tcp, &probe).await?;
        tokio::time::sleep(PAUSE).await;
        let started = Instant::now();
        let mut fresh_tcp = connect_echo(floor_addr).await?;
        echo_round_trip(&mut fresh_tcp, &probe).await?;
        let fresh = started.elapsed();
        drop(fresh_tcp);
        tokio::time::sleep(PAUSE).await;
        if i >= warmup {
            floors[0].push(ms(persistent));
            floors[1].push(ms(fresh));
        }
    }

    let fresh_p50 = percentile(samples[2].iter().map(Sample::overhead_ms), 0.5);
    let fresh_p99 = percentile(samples[2].iter().map(Sample::overhead_ms), 0.99);
    println!(
        "| transport | overhead p50 | overhead p99 | first chunk p50 | first chunk p99 | engine TTFT p50 | overhead p50 vs fresh HTTP |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (slot, transport) in Transport::ALL.into_iter().enumerate() {
        let s = &samples[slot];
        let p50 = percentile(s.iter().map(Sample::overhead_ms), 0.5);
        let p99 = percentile(s.iter().map(Sample::overhead_ms), 0.99);
        println!(
            "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.1}% ({:.0}% lower; p99 {:.0}% lower) |",
            transport.name(),
            p50,
            p99,
            percentile(s.iter().map(|x| x.first_chunk_ms), 0.5),
            percentile(s.iter().map(|x| x.first_chunk_ms), 0.99),
            percentile(s.iter().map(|x| x.engine_ttft_ms), 0.5),
            100.0 * p50 / fresh_p50,
            100.0 * (1.0 - p50 / fresh_p50),
            100.0 * (1.0 - p99 / fresh_p99),
        );
    }
    let ws_p50 = percentile(samples[0].iter().map(Sample::overhead_ms), 0.5);
    let pooled_p50 = percentile(samples[1].iter().map(Sample::overhead_ms), 0.5);
    println!(
        "\nWebSocket overhead p50 vs pooled HTTP: {:.2}x ({:.3} vs {:.3} ms)",
        ws_p50 / pooled_p50,
        ws_p50,
        pooled_p50
    );

    let floor_p50 = percentile(floors[0].iter().copied(), 0.5);
    let floor_fresh_p50 = percentile(floors[1].iter().copied(), 0.5);
    println!(
        "\nFloor, bare TCP on this machine (no HTTP, no WebSocket, no JSON; {} bytes out, one small reply back): \
         a round trip over one connection p50 {:.3} ms (p99 {:.3} ms); a new connection and a round trip p50 {:.3} ms \
         (p99 {:.3} ms). Even a transport that cost nothing beyond one bare round trip would be {:.0}% below fresh HTTP here; \
         WebSocket overhead is {:.2}x that bare round trip.",
        probe.len(),
        floor_p50,
        percentile(floors[0].iter().copied(), 0.99),
        floor_fresh_p50,
        percentile(floors[1].iter().copied(), 0.99),
        100.0 * (1.0 - floor_p50 / fresh_p50),
        ws_p50 / floor_p50,
    );

    drop(servers);
    Ok(())
}

async fn over_ws(engine: &WsEngine, request: GenerateRequest) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let mut generation = engine.generate(request);
    let mut first = None;
    while let Some(chunk) = generation.next_chunk().await {
        match chunk {
            Chunk::Text(_) => {
                first.get_or_insert_with(|| started.elapsed());
            }
            Chunk::Done(finish) => {
                let first = first.ok_or_else(|| anyhow::anyhow!("no chunk over WebSocket: {finish:?}"))?;
                return Ok(Sample { first_chunk_ms: ms(first), engine_ttft_ms: finish.timings.ttft_ms });
            }
        }
    }
    anyhow::bail!("the WebSocket generation ended without Done")
}

async fn over_http(client: &reqwest::Client, url: &str, request: &GenerateRequest) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let body = serde_json::to_vec(request)?;
    let response = client.post(url).header("content-type", "application/json").body(body).send().await?;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut first = None;
    while let Some(bytes) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.starts_with("event: done") {
                let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("{}");
                let timings: glint_engine::Timings = serde_json::from_str(data)?;
                let first = first.ok_or_else(|| anyhow::anyhow!("no chunk over HTTP"))?;
                // Read to the end of the body (off the clock), or the pool could not reuse the
                // connection and "pooled" would open a new one now and then.
                while stream.next().await.is_some() {}
                return Ok(Sample { first_chunk_ms: ms(first), engine_ttft_ms: timings.ttft_ms });
            }
            first.get_or_insert_with(|| started.elapsed());
        }
    }
    anyhow::bail!("the SSE stream ended without a done event")
}

/// Between two requests.
const PAUSE: Duration = Duration::from_millis(1);

/// The floor: a bare TCP server (no TLS even in the TLS section) that answers every read with one
/// small write.
async fn start_echo() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 << 10];
                while let Ok(n) = tcp.read(&mut buffer).await {
                    if n == 0 || tcp.write_all(b"{\"type\":\"chunk\",\"id\":1,\"text\":\"let total\"}").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn connect_echo(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Writes `probe` and waits for the first bytes of the answer.
async fn echo_round_trip(tcp: &mut tokio::net::TcpStream, probe: &[u8]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    tcp.write_all(probe).await?;
    let mut answer = [0u8; 256];
    anyhow::ensure!(tcp.read(&mut answer).await? > 0, "the echo server closed the connection");
    Ok(started.elapsed())
}

/// A minimal streaming HTTP engine: POST /generate with a `GenerateRequest`, answered as SSE
/// (`data: TEXT` per chunk, then `event: done` with the timings).
async fn start_http(engine: Arc<dyn Engine>, tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<SocketAddr> {
    async fn generate(
        State(engine): State<Arc<dyn Engine>>,
        body: String,
    ) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
        let request: GenerateRequest = serde_json::from_str(&body).unwrap_or_default();
        let generation = engine.generate(request);
        Sse::new(generation.map(|chunk| {
            Ok(match chunk {
                Chunk::Text(text) => Event::default().data(serde_json::to_string(&text).unwrap_or_default()),
                Chunk::Done(finish) => {
                    Event::default().event("done").data(serde_json::to_string(&finish.timings).unwrap_or_default())
                }
            })
        }))
    }
    let app = Router::new().route("/generate", post(generate)).with_state(engine);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    match tls {
        Some(acceptor) => {
            tokio::spawn(async move {
                let _ = axum::serve(TlsListener { tcp: listener, acceptor }, app).await;
            });
        }
        None => {
            // Small SSE writes must not wait for Nagle's algorithm, as on the WebSocket side.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
    }
    Ok(addr)
}

/// TCP plus a TLS handshake per accepted connection, for the HTTPS side.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(values: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index]
}
