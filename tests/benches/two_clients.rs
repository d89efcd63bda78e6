//! Two people on one shared engine: `glint engine serve`'s server runs in this process on a
//! loopback port over one engine, and two `ws://` clients talk to it, each on its own connection
//! and document. The typist types at 10 keys/s, each keystroke a new completion request that
//! supersedes its previous one, as the LSP's are; the measured client types a character, asks for
//! a completion, reads the whole answer and pauses 250 ms. Each runs alone, then both together;
//! then the measured client types at 10 keys/s too, alone and together with the typist.
//! Prints each client's time to first answer (first chunk, or the end of an empty answer)
//! p50/p90, the cancellations a client suffered that it did not cause itself (the other client's
//! doing; 0 on a fair engine), busy refusals, and each client's p50 together against its p50
//! alone. Asserts nothing.
//!
//! `cargo bench -p glint-tests --bench two_clients` runs the scripted engine (a quick run of the
//! transport and the bench itself) and the real default model when it has been fetched (SKIP
//! otherwise). `GLINT_BENCH_ENGINE=fake` or `=model` runs only one; `GLINT_BENCH_SECONDS` sets each
//! phase's length (default 15); `GLINT_THREADS` the model's threads (default one per core).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glint_engine::fake::FakeEngine;
use glint_engine::ws::{ServeConfig, WsClientConfig, WsEngine};
use glint_engine::{Chunk, Engine, FinishReason, GenerateRequest, LocalConfig, LocalEngine, fetch};
use glint_tests::corpus;
use glint_tests::stats::{ms, summarize};
use parking_lot::Mutex;

const KEY_INTERVAL: Duration = Duration::from_millis(100);
const PAUSE: Duration = Duration::from_millis(250);
const MAX_TOKENS: u32 = 24;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async { tokio::spawn(sections()).await? })
}

async fn sections() -> anyhow::Result<()> {
    let only = std::env::var("GLINT_BENCH_ENGINE").unwrap_or_default();
    let seconds = std::env::var("GLINT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let phase = Duration::from_secs(seconds);
    if only.is_empty() || only == "fake" {
        // A slow scripted engine: 4 ms per three characters, each request on its own thread.
        let engine = FakeEngine::fixed("    total += item.value * weight;").with_delay(Duration::from_millis(4));
        println!("## Scripted engine (no queue: every request runs at once), {seconds} s per phase\n");
        run(Arc::new(engine), phase).await?;
    }
    if only.is_empty() || only == "model" {
        match fetch::resolve_model(None) {
            Ok(path) => {
                let threads = std::env::var("GLINT_THREADS").ok().and_then(|t| t.parse().ok());
                let engine = LocalEngine::load(&path, LocalConfig { threads, ..LocalConfig::default() })?;
                let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
                println!(
                    "\n## Real model ({}), threads {}, {cores} CPUs, {seconds} s per phase, max_tokens {MAX_TOKENS}\n",
                    path.display(),
                    threads.map_or_else(|| "one per physical core".to_string(), |t: usize| t.to_string()),
                );
                run(Arc::new(engine), phase).await?;
            }
            Err(e) => println!("\nSKIP real model section: {e}"),
        }
    }
    Ok(())
}

/// Alone, then together, then prints the table.
async fn run(engine: Arc<dyn Engine>, phase: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let server =
        tokio::spawn(glint_engine::ws::serve(listener, engine, ServeConfig::default(), std::future::pending()));
    let typist = Client::connect(&url, "typist.rs", "rust").await?;
    let measured = Client::connect(&url, "measured.py", "python").await?;
    // One request each first, so the model's first run is not in anyone's figures.
    typist.warm_up().await;
    measured.warm_up().await;

    let typist_alone = typist.type_for(phase).await;
    let measured_alone = measured.ask_for(phase).await;
    let (typist_together, measured_together) = tokio::join!(typist.type_for(phase), measured.ask_for(phase));
    // Then both type at 10 keys/s at once.
    let second_typist_alone = measured.type_for(phase).await;
    let (first_both, second_both) = tokio::join!(typist.type_for(phase), measured.type_for(phase));
    server.abort();

    println!(
        "typist: a request per key at 10 keys/s; measured: a request, its whole answer, a {} ms pause\n",
        PAUSE.as_millis()
    );
    println!(
        "| client | phase | requests | answered | first answer p50 | p90 | cancelled by the other | busy | errors | p50 / alone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, alone, together) in [
        ("measured", &measured_alone, &measured_together),
        ("typist", &typist_alone, &typist_together),
        ("typist, both typing", &typist_alone, &first_both),
        ("second typist, both typing", &second_typist_alone, &second_both),
    ] {
        alone.print(name, "alone", None);
        together.print(name, "together", alone.p50());
    }
    Ok(())
}

/// One client: its connection, and its document where it types a new function at a line in the
/// middle, as an editor would: the prompt's window starts at a fixed line above, and the text
/// after the cursor stays as it is.
struct Client {
    engine: WsEngine,
    session: String,
    language: String,
    /// The window's text before the insertion point, and after it.
    before: String,
    after: String,
    /// What the client types, a character per keystroke, from the start again when done.
    typing: Vec<char>,
    typed: AtomicUsize,
}

/// What one client saw in one phase.
#[derive(Default)]
struct Outcome {
    requests: usize,
    first_answers: Vec<Duration>,
    /// Cancelled while it was still its client's newest request: someone else's doing.
    cancelled_by_other: usize,
    busy: usize,
    errors: usize,
}

impl Outcome {
    fn p50(&self) -> Option<Duration> {
        (!self.first_answers.is_empty()).then(|| summarize(&self.first_answers).p50)
    }

    fn print(&self, client: &str, phase: &str, alone: Option<Duration>) {
        let (p50, p90) = if self.first_answers.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            let s = summarize(&self.first_answers);
            (format!("{:.1} ms", ms(s.p50)), format!("{:.1} ms", ms(s.p90)))
        };
        let ratio = match (alone, self.p50()) {
            (Some(alone), Some(now)) if !alone.is_zero() => format!("{:.2}x", now.as_secs_f64() / alone.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "| {client} | {phase} | {} | {} | {p50} | {p90} | {} | {} | {} | {ratio} |",
            self.requests,
            self.first_answers.len(),
            self.cancelled_by_other,
            self.busy,
            self.errors
        );
    }
}

impl Client {
    async fn connect(url: &str, file: &str, language: &str) -> anyhow::Result<Client> {
        let engine = WsEngine::connect(WsClientConfig::new(url))?;
        tokio::time::timeout(Duration::from_secs(10), engine.connected()).await?;
        let text = corpus::source(language, 400);
        // Insert at a line start halfway down; the window holds 60 lines above and 20 below.
        let at = text[..text.len() / 2].rfind('\n').map_or(0, |i| i + 1);
        let start = text[..at].rmatch_indices('\n').nth(60).map_or(0, |(i, _)| i + 1);
        let end = text[at..].match_indices('\n').nth(20).map_or(text.len(), |(i, _)| at + i + 1);
        let typing = corpus::source(language, 1).chars().collect();
        // A keyed hash, as the LSP sends, so the server never sees a path.
        let session = glint_engine::session_key(&format!("file:///bench/{file}"));
        Ok(Client {
            engine,
            session,
            language: language.into(),
            before: text[start..at].into(),
            after: text[at..end].into(),
            typing,
            typed: AtomicUsize::new(0),
        })
    }

    /// The request after typing one more character.
    fn next_request(&self) -> GenerateRequest {
        let typed = self.typed.fetch_add(1, Ordering::Relaxed) % self.typing.len() + 1;
        let mut prefix = self.before.clone();
        prefix.extend(&self.typing[..typed]);
        GenerateRequest {
            prefix,
            suffix: self.after.clone(),
            language: Some(self.language.clone()),
            max_tokens: MAX_TOKENS,
            stop: vec!["\n".into()],
            session: Some(self.session.clone()),
            ..GenerateRequest::default()
        }
    }

    async fn warm_up(&self) {
        let _ = self.engine.generate(self.next_request()).collect_text().await;
    }

    /// Asks, reads the whole answer, pauses; for `phase`.
    async fn ask_for(&self, phase: Duration) -> Outcome {
        let mut outcome = Outcome::default();
        let end = Instant::now() + phase;
        while Instant::now() < end {
            let sent = Instant::now();
            let mut generation = self.engine.generate(self.next_request());
            outcome.requests += 1;
            let mut first = None;
            while let Some(chunk) = generation.next_chunk().await {
                first.get_or_insert_with(|| sent.elapsed());
                if let Chunk::Done(finish) = chunk {
                    match finish.reason {
                        FinishReason::Stop | FinishReason::Length => outcome.first_answers.extend(first),
                        // It never cancels its own requests.
                        FinishReason::Cancelled => outcome.cancelled_by_other += 1,
                        FinishReason::Deadline | FinishReason::Error => count_error(&mut outcome, finish.error),
                    }
                    break;
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
        outcome
    }

    /// Types a key every 100 ms for `phase`, each a request that supersedes the previous one; the
    /// requests' answers are read as they come.
    async fn type_for(&self, phase: Duration) -> Outcome {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let newest = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        let mut tick = tokio::time::interval(KEY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = Instant::now() + phase;
        let mut n = 0;
        while Instant::now() < end {
            tick.tick().await;
            n += 1;
            newest.store(n, Ordering::Release);
            let sent = Instant::now();
            let mut generation = self.engine.generate(self.next_request());
            outcome.lock().requests += 1;
            let (outcome, newest) = (Arc::clone(&outcome), Arc::clone(&newest));
            readers.push(tokio::spawn(async move {
                let mut first = None;
                while let Some(chunk) = generation.next_chunk().await {
                    if let Chunk::Done(finish) = chunk {
                        let mut outcome = outcome.lock();
                        match finish.reason {
                            FinishReason::Stop | FinishReason::Length => {
                                outcome.first_answers.push(first.unwrap_or_else(|| sent.elapsed()));
                            }
                            // Superseded by its own next keystroke, or else by someone else.
                            FinishReason::Cancelled if newest.load(Ordering::Acquire) > n => {
                                outcome.first_answers.extend(first);
                            }
                            FinishReason::Cancelled => outcome.cancelled_by_other += 1,
                            FinishReason::Deadline | FinishReason::Error => count_error(&mut outcome, finish.error),
                        }
                        break;
                    }
                    first.get_or_insert_with(|| sent.elapsed());
                }
            }));
        }
        for reader in readers {
            let _ = reader.await;
        }
        Arc::try_unwrap(outcome).map(Mutex::into_inner).unwrap_or_default()
    }
}

fn count_error(outcome: &mut Outcome, error: Option<String>) {
    let error = error.unwrap_or_default();
    if error.contains("busy") {
        outcome.busy += 1;
    } else {
        outcome.errors += 1;
        if outcome.errors == 1 {
            println!("(first error: {error})");
        }
    }
}
