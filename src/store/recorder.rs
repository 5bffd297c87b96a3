//! Where step and run-end records go: the unit database, or, while it
//! cannot be reached, a local spool (SQLite beside the station file or the
//! batch journal) that is delivered in order once it is back. Every record is
//! idempotent in the database (an upsert keyed by run id and step), so a
//! record delivered twice (a crash between delivery and removal from the
//! spool) is written once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use tokio::sync::{Mutex, watch};

use super::{DbUrl, RunEnd, StepRow, Store, StoreError};

/// One record on its way to the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Step(StepRow),
    End(RunEnd),
}

/// A station's (or batch's) writer. `healthy` is false while the database is away.
#[derive(Clone)]
pub struct Recorder {
    store: Store,
    spool: AnyPool,
    spool_url: DbUrl,
    /// Serializes records (the spool keeps their order) and holds whether
    /// the spool may hold records: known here, so a record on the way to a
    /// healthy database costs no spool query.
    spool_used: Arc<Mutex<bool>>,
    healthy: Arc<watch::Sender<bool>>,
}

// The pool and URL are left out: a URL may carry a password.
impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Opens (creating) the spool at `spool` and delivers what an earlier
    /// process left in it.
    pub async fn open(store: Store, spool: &DbUrl) -> Result<Recorder, StoreError> {
        sqlx::any::install_default_drivers();
        let failed = |error: sqlx::Error| StoreError::Connect { url: spool.redacted(), message: error.to_string() };
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(spool.secret()).await.map_err(failed)?;
        sqlx::query("CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)")
            .execute(&pool)
            .await
            .map_err(failed)?;
        let (healthy, _) = watch::channel(true);
        let recorder = Recorder {
            store,
            spool: pool,
            spool_url: spool.clone(),
            spool_used: Arc::new(Mutex::new(true)),
            healthy: Arc::new(healthy),
        };
        recorder.deliver().await;
        Ok(recorder)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Follows the database's health (true: reachable).
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    /// Marks the database away (a failed statement elsewhere) or back.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.send_if_modified(|now| std::mem::replace(now, healthy) != healthy);
    }

    /// Records `record`: straight to the database when it is reachable and
    /// nothing waits in the spool, else into the spool. Errors only when
    /// the spool itself cannot be written (the station's disk).
    pub async fn record(&self, record: Record) -> Result<(), StoreError> {
        let mut spool_used = self.spool_used.lock().await;
        if !*spool_used {
            match apply(&self.store, &record).await {
                Ok(()) => return Ok(()),
                Err(_) => self.set_healthy(false),
            }
        }
        let text = serde_json::to_string(&record).expect("a record is plain JSON");
        sqlx::query("INSERT INTO spool (record) VALUES ($1)").bind(text).execute(&self.spool).await.map_err(|e| {
            StoreError::Query { url: self.spool_url.redacted(), what: "spooling a record", message: e.to_string() }
        })?;
        *spool_used = true;
        Ok(())
    }

    /// Delivers the spool in order; stops at the first record the database
    /// does not take. Returns whether the spool is empty.
    pub async fn deliver(&self) -> bool {
        let mut spool_used = self.spool_used.lock().await;
        for _ in 0..100_000 {
            let next =
                sqlx::query("SELECT seq, record FROM spool ORDER BY seq LIMIT 1").fetch_optional(&self.spool).await;
            let Ok(next) = next else { return false };
            let Some(row) = next else {
                *spool_used = false;
                self.set_healthy(true);
                return true;
            };
            let (seq, text): (i64, String) = (row.get(0), row.get(1));
            if let Ok(record) = serde_json::from_str::<Record>(&text)
                && apply(&self.store, &record).await.is_err()
            {
                self.set_healthy(false);
                return false;
            }
            // Applied (or unreadable, which no retry would mend): gone from the spool.
            if sqlx::query("DELETE FROM spool WHERE seq = $1").bind(seq).execute(&self.spool).await.is_err() {
                return false;
            }
        }
        false
    }

    /// Delivers the spool every `every` until `stop` turns true.
    pub async fn keep_delivering(&self, every: Duration, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
            let waiting = *self.spool_used.lock().await;
            if waiting || !*self.healthy.borrow() {
                self.deliver().await;
            }
        }
    }
}

async fn apply(store: &Store, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Step(step) => store.record_step(step).await,
        Record::End(end) => store.end_run(end).await,
    }
}
