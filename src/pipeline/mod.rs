//! The job users come for: a profile's steps run on one device, many devices
//! at once, with a journal to resume and reports to hand on.
//!
//! - [`batch`]: many devices under a limit of places, Ctrl-C aware.
//! - [`device`]: one device through its profile's steps, journaled.
//! - [`job`]: a device job and its profile, loaded and hashed once.
//! - [`journal`]: JSON lines, appended and fsynced per step; resume reads it.
//! - [`outcome`]: how a step ended and the hashes of what it sent, the words
//!   the journal and the report share.
//! - [`recording`]: a device's run recorded in the unit database as it goes
//!   (stations, `batch --db`).
//! - [`steps`]: how each step kind runs, one file per kind.
//! - [`report`]: JSON (documented schema), JUnit XML and a human table,
//!   written atomically.

pub mod batch;
pub mod device;
pub mod job;
pub mod journal;
pub mod outcome;
pub mod recording;
pub mod report;
pub mod steps;
