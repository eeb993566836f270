//! The admin audit log: every action, who, what, when and its outcome.
//! With Redis it is a list there (`shared.rs`); without, the last
//! [`AUDIT_IN_MEMORY`] in memory and every one appended to `audit.jsonl` in
//! the models directory.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One admin action as recorded: who, what, when, outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminAction {
    /// When, RFC 3339.
    pub at: String,
    /// Who.
    pub who: String,
    /// What: deploy, promote, rollback, shadow, canary, unload, auto-promote.
    pub action: String,
    /// The family.
    pub family: String,
    /// The version it was about, if any.
    pub version: String,
    /// "ok" or "refused".
    pub outcome: String,
    /// What happened or why it was refused.
    pub detail: String,
}

/// How many admin actions a server without Redis keeps in memory (all are
/// appended to `audit.jsonl` in the models directory).
pub(super) const AUDIT_IN_MEMORY: usize = 1000;

/// At most 64 characters of `text`, without control characters: what a
/// caller sent, fit for the audit log.
pub fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The actions kept by this server: the last ones in memory, every one in a
/// file when there is no shared log.
#[derive(Debug)]
pub(super) struct LocalAudit {
    kept: Mutex<VecDeque<AdminAction>>,
    file: PathBuf,
}

impl LocalAudit {
    /// A log appending to `file`.
    pub(super) fn new(file: PathBuf) -> Self {
        LocalAudit {
            kept: Mutex::new(VecDeque::new()),
            file,
        }
    }

    /// Keeps `entry` in memory (the oldest goes past [`AUDIT_IN_MEMORY`]).
    pub(super) fn keep(&self, entry: &AdminAction) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= AUDIT_IN_MEMORY {
            kept.pop_front();
        }
        kept.push_back(entry.clone());
    }

    /// Appends `entry` to the file, as one JSON line.
    pub(super) fn append(&self, entry: &AdminAction) {
        let line = serde_json::to_string(entry).unwrap_or_default() + "\n";
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %self.file.display(), "admin action not recorded on disk");
        }
    }

    /// The last `count` kept, newest first.
    pub(super) fn recent(&self, count: usize) -> Vec<AdminAction> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().take(count).cloned().collect()
    }
}
