//! Running code actions: each has a cancellation token, fired by an edit of its document, by a
//! cancel of its progress bar, or by shutdown. No LSP types here.

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Running {
    id: u64,
    uri: String,
    progress: Option<String>,
    token: CancellationToken,
}

/// The code actions being computed now.
#[derive(Debug, Default)]
pub struct ActionWork {
    running: Mutex<Vec<Running>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl ActionWork {
    /// Registers an action on `uri`; returns its id (for `finish`) and token.
    pub fn start(&self, uri: &str) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        self.running.lock().push(Running { id, uri: uri.to_string(), progress: None, token: token.clone() });
        (id, token)
    }

    /// Ties a progress token to action `id`, so that cancelling the progress cancels the action.
    pub fn set_progress(&self, id: u64, progress: &str) {
        if let Some(running) = self.running.lock().iter_mut().find(|r| r.id == id) {
            running.progress = Some(progress.to_string());
        }
    }

    /// Cancels every action on `uri` (its document changed or closed).
    pub fn cancel_document(&self, uri: &str) {
        self.running.lock().retain(|r| {
            if r.uri == uri {
                r.token.cancel();
            }
            r.uri != uri
        });
    }

    /// Cancels the action shown by progress token `progress`.
    pub fn cancel_progress(&self, progress: &str) {
        self.running.lock().retain(|r| {
            let hit = r.progress.as_deref() == Some(progress);
            if hit {
                r.token.cancel();
            }
            !hit
        });
    }

    pub fn cancel_all(&self) {
        for running in self.running.lock().drain(..) {
            running.token.cancel();
        }
    }

    pub fn finish(&self, id: u64) {
        self.running.lock().retain(|r| r.id != id);
    }

    pub fn len(&self) -> usize {
        self.running.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_cancels_only_that_documents_actions() {
        let work = ActionWork::default();
        let (_, a) = work.start("file:///a.rs");
        let (_, b) = work.start("file:///b.rs");
        work.cancel_document("file:///a.rs");
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
        assert_eq!(work.len(), 1);
    }

    #[test]
    fn cancelling_a_progress_bar_cancels_its_action() {
        let work = ActionWork::default();
        let (id, token) = work.start("file:///a.rs");
        work.set_progress(id, "glint/action/1");
        work.cancel_progress("glint/action/2");
        assert!(!token.is_cancelled());
        work.cancel_progress("glint/action/1");
        assert!(token.is_cancelled());
        assert!(work.is_empty());
    }
}
