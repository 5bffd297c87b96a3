//! A device's run recorded in the unit database as it goes: the run row
//! before the unit is touched, each step's row as the step ends (in order,
//! by one writer, while the unit goes on), and the run's end with its
//! outcome, class, finding and the images really sent. Used by stations and
//! by `batch --db`; the records go through the store's [`Recorder`], so a
//! database that goes away mid-run loses nothing.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::report::{DeviceOutcome, DeviceReport, StepRecord};
use crate::store::{Begun, FixtureRow, Record, Recorder, RunEnd, RunStart, StepRow, StoreError, now_ms};

/// The live fixture row a station keeps up to date with the running step.
#[derive(Debug, Clone)]
pub struct LiveFixture {
    pub row: FixtureRow,
    /// The profile's step kinds, in order (to name the next step).
    pub kinds: Vec<String>,
}

/// A run being recorded.
pub struct RunRecording {
    run_id: String,
    recorder: Recorder,
    steps: mpsc::UnboundedSender<StepRecord>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for RunRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRecording").field("run_id", &self.run_id).finish_non_exhaustive()
    }
}

impl RunRecording {
    /// Writes the run (`running`) and starts the step writer. `UnitBusy`
    /// when the unit runs elsewhere: nothing was written.
    pub async fn begin(
        recorder: &Recorder,
        start: &RunStart,
        live: Option<LiveFixture>,
    ) -> Result<Result<RunRecording, Begun>, StoreError> {
        match recorder.store().begin_run(start).await? {
            Begun::Started => {}
            busy @ Begun::UnitBusy => return Ok(Err(busy)),
        }
        let (steps, mut received) = mpsc::unbounded_channel::<StepRecord>();
        let writer = {
            let recorder = recorder.clone();
            let run_id = start.id.clone();
            tokio::spawn(async move {
                while let Some(step) = received.recv().await {
                    if let Err(error) = recorder.record(Record::Step(step_row(&run_id, &step))).await {
                        tracing::error!(%error, "a step record could not be kept");
                    }
                    if let Some(live) = &live {
                        let row = FixtureRow {
                            step: live.kinds.get(step.index + 1).cloned(),
                            updated_ms: now_ms(),
                            ..live.row.clone()
                        };
                        // A live view only: the next update replaces a lost one.
                        let _ = recorder.store().set_fixture(&row).await;
                    }
                }
            })
        };
        Ok(Ok(RunRecording { run_id: start.id.clone(), recorder: recorder.clone(), steps, writer }))
    }

    /// Queues a step's record (for `RunContext::on_step`, which cannot wait).
    pub fn step(&self, step: &StepRecord) {
        let _ = self.steps.send(step.clone());
    }

    /// Waits for the step records, then records how the run ended.
    pub async fn end(self, report: &DeviceReport) -> RunEnd {
        let RunRecording { run_id, recorder, steps, writer } = self;
        drop(steps);
        let _ = writer.await;
        let end = run_end(&run_id, report);
        if let Err(error) = recorder.record(Record::End(end.clone())).await {
            tracing::error!(%error, "a run's end could not be kept");
        }
        end
    }
}

/// A step's row.
pub fn step_row(run_id: &str, step: &StepRecord) -> StepRow {
    StepRow {
        run_id: run_id.into(),
        idx: step.index as i64,
        kind: step.kind.clone(),
        outcome: step.outcome.as_str().into(),
        started_ms: step.started_ms as i64,
        duration_ms: step.duration_ms as i64,
        retries: i64::from(step.retries),
        detail: step.detail.clone(),
        inputs_sha256: step.inputs_sha256.clone(),
    }
}

/// How the device's report says the run ended.
pub fn run_end(run_id: &str, report: &DeviceReport) -> RunEnd {
    let outcome = if report.outcome == DeviceOutcome::Passed { "passed" } else { "failed" };
    RunEnd {
        run_id: run_id.into(),
        ended_ms: now_ms(),
        outcome: outcome.into(),
        failure_class: report.failure_class.map(|c| c.as_str().to_string()),
        finding: report.finding.as_ref().map(|f| f.code.as_str().to_string()),
        error: report.error.clone(),
        images: serde_json::to_string(&report.images).ok(),
    }
}
