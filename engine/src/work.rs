//! Running work keyed by who asked, and the one rule of who cancels whom (see [`crate::Engine`]):
//! work is keyed by client (`None` in process, a connection of `glint engine serve` otherwise)
//! and session; the newest work of a key supersedes that key's older work at once, and never
//! another key's. Other cancellations name the work they end (a `cancel` frame, a cancelled
//! progress bar) or everything a predicate picks (an edit cancels its document's work).
//!
//! [`Registry`] holds running work under this rule: the language server's completions and code
//! actions, and each connection of `glint engine serve`. The in-process engine's queue
//! (`local/queue.rs`) keeps its own lists, to hand out turns, and applies the same rule with
//! [`WorkKey::supersedes`].

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::{CancelFlag, ClientId};

/// Whose work it is: the unit of supersession (and, on the in-process engine, of turns and KV
/// caches).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WorkKey {
    /// `None` for the process's own work.
    pub client: Option<ClientId>,
    /// The session (a document, or a document's code actions); work without one shares the
    /// empty session.
    pub session: String,
}

impl WorkKey {
    pub fn new(client: Option<ClientId>, session: impl Into<String>) -> WorkKey {
        WorkKey { client, session: session.into() }
    }

    /// The rule: newer work of this key supersedes `older`, waiting or running, only when both
    /// are of the same key.
    pub fn supersedes(&self, older: &WorkKey) -> bool {
        self == older
    }
}

/// What [`Registry::start`] gives the new work: its id, for [`Registry::finish`], and the flag
/// that is set when something cancels it.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: u64,
    pub cancel: CancelFlag,
}

/// Running work under the rule above, each with a value of the caller's (what it shows, how to
/// reach it).
#[derive(Debug)]
pub struct Registry<V> {
    running: Mutex<Vec<Running<V>>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Running<V> {
    id: u64,
    key: WorkKey,
    cancel: CancelFlag,
    value: V,
}

impl<V> Default for Registry<V> {
    fn default() -> Self {
        Registry { running: Mutex::new(Vec::new()), next_id: AtomicU64::new(1) }
    }
}

impl<V> Registry<V> {
    /// Registers work under `key`, superseding the key's older work (cancelled and forgotten).
    pub fn start(&self, key: WorkKey, value: V) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancelFlag::new();
        let mut running = self.running.lock();
        running.retain(|older| {
            let superseded = key.supersedes(&older.key);
            if superseded {
                older.cancel.cancel();
            }
            !superseded
        });
        running.push(Running { id, key, cancel: cancel.clone(), value });
        Ticket { id, cancel }
    }

    /// Cancels and forgets the work of `key` (before new work of the key is admitted).
    pub fn supersede(&self, key: &WorkKey) -> usize {
        self.cancel_where(|older, _| key.supersedes(older))
    }

    /// Cancels and forgets the work `pick` chooses; how many.
    pub fn cancel_where(&self, pick: impl Fn(&WorkKey, &V) -> bool) -> usize {
        let mut cancelled = 0;
        self.running.lock().retain(|work| {
            let hit = pick(&work.key, &work.value);
            if hit {
                work.cancel.cancel();
                cancelled += 1;
            }
            !hit
        });
        cancelled
    }

    /// Cancels and forgets all work (shutdown).
    pub fn cancel_all(&self) -> usize {
        self.cancel_where(|_, _| true)
    }

    /// Forgets work `id` that ended, unless something cancelled it already.
    pub fn finish(&self, id: u64) {
        self.running.lock().retain(|work| work.id != id);
    }

    /// Forgets the work `pick` chooses, without cancelling it (it ended).
    pub fn finish_where(&self, pick: impl Fn(&WorkKey, &V) -> bool) {
        self.running.lock().retain(|work| !pick(&work.key, &work.value));
    }

    /// Reads the value of the first running work `pick` chooses.
    pub fn find<R>(&self, pick: impl Fn(&WorkKey, &V) -> bool, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.running.lock().iter().find(|work| pick(&work.key, &work.value)).map(|work| read(&work.value))
    }

    /// Changes the value of work `id`, while it runs.
    pub fn update(&self, id: u64, change: impl FnOnce(&mut V)) {
        if let Some(work) = self.running.lock().iter_mut().find(|work| work.id == id) {
            change(&mut work.value);
        }
    }

    /// Whether any running work is one `pick` chooses.
    pub fn any(&self, pick: impl Fn(&WorkKey, &V) -> bool) -> bool {
        self.running.lock().iter().any(|work| pick(&work.key, &work.value))
    }

    /// The values of the running work, oldest first.
    pub fn values<R>(&self, read: impl Fn(&V) -> R) -> Vec<R> {
        self.running.lock().iter().map(|work| read(&work.value)).collect()
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
    fn newer_work_supersedes_only_its_own_keys_older_work() {
        let registry = Registry::default();
        let a = registry.start(WorkKey::new(None, "a"), 1);
        let b = registry.start(WorkKey::new(None, "b"), 2);
        let other_client = registry.start(WorkKey::new(Some(ClientId::fresh()), "a"), 3);
        let a2 = registry.start(WorkKey::new(None, "a"), 4);
        assert!(a.cancel.is_cancelled());
        assert!(!b.cancel.is_cancelled() && !other_client.cancel.is_cancelled() && !a2.cancel.is_cancelled());
        assert_eq!(registry.values(|v| *v), vec![2, 3, 4]);
        // Finishing superseded work does not forget its successor.
        registry.finish(a.id);
        assert_eq!(registry.len(), 3);
        registry.finish(a2.id);
        assert_eq!(registry.values(|v| *v), vec![2, 3]);
    }

    #[test]
    fn a_predicate_cancels_what_it_picks_and_finishing_cancels_nothing() {
        let registry = Registry::default();
        let one = registry.start(WorkKey::new(None, "doc#1"), "doc");
        let two = registry.start(WorkKey::new(None, "doc#2"), "doc");
        let other = registry.start(WorkKey::new(None, "other"), "other");
        assert_eq!(registry.cancel_where(|_, uri| *uri == "doc"), 2);
        assert!(one.cancel.is_cancelled() && two.cancel.is_cancelled() && !other.cancel.is_cancelled());
        registry.finish_where(|_, uri| *uri == "other");
        assert!(registry.is_empty() && !other.cancel.is_cancelled());
    }
}
