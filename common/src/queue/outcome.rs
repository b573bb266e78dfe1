//! What a job handler reports: an outcome when it finished, or an error that
//! says whether trying again could help.

use std::error::Error as StdError;

/// A boxed error with its cause chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How a job finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The job made its effect.
    Done,
    /// The effect was already recorded by an earlier run; nothing was done again.
    AlreadyDone,
    /// There was nothing to do (e.g. the order is gone), with the reason.
    Skipped(String),
}

/// Why a job handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (SMTP down, gateway timeout, database busy).
    #[error("transient failure: {0}")]
    Transient(#[source] BoxError),
    /// Retrying cannot help (bad data, a declined card): the job goes to `dead`.
    #[error("permanent failure: {0}")]
    Permanent(#[source] BoxError),
}

impl JobError {
    /// A failure worth retrying.
    pub fn transient(error: impl Into<BoxError>) -> JobError {
        JobError::Transient(error.into())
    }

    /// A failure retrying cannot fix.
    pub fn permanent(error: impl Into<BoxError>) -> JobError {
        JobError::Permanent(error.into())
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Transient(_))
    }
}

/// Database errors are transient: a busy or unavailable database is worth
/// another attempt, and a handler that hits a constraint it did not expect is
/// better retried a bounded number of times than lost.
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> JobError {
        JobError::Transient(Box::new(error))
    }
}

/// The error and its causes on one line, for `last_error` and attempt rows.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their source in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl crate::db::WriteError for JobError {
    fn as_database_error(&self) -> Option<&sqlx::Error> {
        match self {
            JobError::Transient(error) | JobError::Permanent(error) => error.downcast_ref::<sqlx::Error>(),
        }
    }
}
