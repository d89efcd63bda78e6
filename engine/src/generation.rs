//! `Generation`: a stream of text chunks ending with a `Finish`, which cancels its work when dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{Notify, mpsc};

use crate::{Finish, FinishReason};

/// One streamed piece of a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Newly decoded text; never splits a UTF-8 character.
    Text(String),
    /// The end, always the last chunk.
    Done(Finish),
}

/// A shared flag the producer polls between steps (a model loop) or awaits (a network peer); set
/// when the consumer goes away.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }
    /// Resolves once `cancel` was called; no polling, no timer.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `cancel` between the two is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// The consumer's end of a generation. Poll it as a `Stream` or with `next_chunk`.
/// Dropping it sets the cancel flag, which the producer sees before its next step.
#[derive(Debug)]
pub struct Generation {
    rx: mpsc::UnboundedReceiver<Chunk>,
    cancel: CancelFlag,
    finished: bool,
}

/// The producer's end of a generation, held by whoever runs the model.
#[derive(Debug, Clone)]
pub struct GenerationSender {
    tx: mpsc::UnboundedSender<Chunk>,
    cancel: CancelFlag,
}

impl Generation {
    /// A connected pair: the consumer's `Generation` and the producer's sender.
    pub fn channel() -> (Generation, GenerationSender) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancelFlag::new();
        (Generation { rx, cancel: cancel.clone(), finished: false }, GenerationSender { tx, cancel })
    }

    /// A generation that has already failed, for engines that cannot even start.
    pub fn failed(message: impl Into<String>) -> Generation {
        let (generation, sender) = Generation::channel();
        sender.finish(Finish { reason: FinishReason::Error, error: Some(message.into()), ..Finish::default() });
        generation
    }

    /// The next chunk; `None` after `Done` or when the producer vanished without finishing
    /// (which callers should treat as an error).
    pub async fn next_chunk(&mut self) -> Option<Chunk> {
        if self.finished {
            return None;
        }
        let chunk = self.rx.recv().await;
        if matches!(chunk, Some(Chunk::Done(_)) | None) {
            self.finished = true;
        }
        chunk
    }

    /// Collects the whole text and the finish, for callers that do not stream.
    pub async fn collect_text(mut self) -> (String, Finish) {
        let mut text = String::new();
        while let Some(chunk) = self.next_chunk().await {
            match chunk {
                Chunk::Text(t) => text.push_str(&t),
                Chunk::Done(finish) => return (text, finish),
            }
        }
        let finish = Finish {
            reason: FinishReason::Error,
            error: Some("the engine stopped without finishing the generation".into()),
            ..Finish::default()
        };
        (text, finish)
    }

    /// Cancels the work without dropping the stream, so the final `Done` can still be read.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Stream for Generation {
    type Item = Chunk;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Chunk::Done(_)) | None) = &polled {
            self.finished = true;
        }
        polled
    }
}

impl GenerationSender {
    /// Whether the consumer cancelled or went away; producers check this between steps.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }

    /// Resolves once the consumer dropped the generation or cancelled it, for producers that wait
    /// on something else (a network peer) rather than stepping a model loop.
    pub async fn cancelled(&self) {
        // A drop closes the channel (and sets the flag); a `cancel()` without a drop sets the flag.
        tokio::select! {
            () = self.tx.closed() => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// The flag itself, for producers that hand it to a model loop.
    pub fn cancel_flag(&self) -> &CancelFlag {
        &self.cancel
    }

    /// Streams text; returns false when nobody listens any more.
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        let text = text.into();
        if text.is_empty() {
            return !self.is_cancelled();
        }
        self.tx.send(Chunk::Text(text)).is_ok() && !self.cancel.is_cancelled()
    }

    /// Ends the generation.
    pub fn finish(&self, finish: Finish) {
        let _ = self.tx.send(Chunk::Done(finish));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_generation_cancels_the_producer() {
        let (generation, sender) = Generation::channel();
        assert!(!sender.is_cancelled());
        drop(generation);
        assert!(sender.is_cancelled());
        assert!(!sender.send_text("late"));
    }

    #[tokio::test]
    async fn cancelled_resolves_on_cancel_and_on_drop_without_polling() {
        let (generation, sender) = Generation::channel();
        let waiter = tokio::spawn({
            let sender = sender.clone();
            async move { sender.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        generation.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("cancel noticed").expect("join");

        let (generation, sender) = Generation::channel();
        let waiter = tokio::spawn(async move { sender.cancelled().await });
        drop(generation);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("drop noticed").expect("join");

        // Cancelled before anyone waits: resolves at once.
        let flag = CancelFlag::new();
        flag.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), flag.cancelled()).await.expect("already cancelled");
    }

    #[tokio::test]
    async fn collect_text_joins_chunks_and_returns_the_finish() {
        let (generation, sender) = Generation::channel();
        assert!(sender.send_text("fn "));
        assert!(sender.send_text("main"));
        sender.finish(Finish { reason: FinishReason::Length, ..Finish::default() });
        let (text, finish) = generation.collect_text().await;
        assert_eq!(text, "fn main");
        assert_eq!(finish.reason, FinishReason::Length);
    }

    #[tokio::test]
    async fn a_vanished_producer_is_an_error() {
        let (generation, sender) = Generation::channel();
        drop(sender);
        let (_, finish) = generation.collect_text().await;
        assert_eq!(finish.reason, FinishReason::Error);
    }
}
