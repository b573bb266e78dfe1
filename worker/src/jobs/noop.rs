//! `noop`: finishes at once. It measures the queue itself: claim, dispatch
//! and ack, with no work in between.

use kassa_common::queue::{JobError, JobPayload, Outcome};
use serde::{Deserialize, Serialize};

use crate::registry::{Job, JobContext};

/// A job that does nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noop {
    /// Free for the pusher's bookkeeping (e.g. a sequence number).
    #[serde(default)]
    pub key: i64,
}

impl Noop {
    /// Does nothing.
    pub async fn run(&self, _ctx: &JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Done)
    }
}

impl JobPayload for Noop {
    const JOB_TYPE: &'static str = "noop";
}

impl Job for Noop {
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        self.run(&ctx).await
    }
}
