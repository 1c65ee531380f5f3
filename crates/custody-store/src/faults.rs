//! Fault injection: named points in the commit path where a test can make it fail, to
//! check that a failure anywhere leaves the log and the state agreeing.

/// A point in the commit of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Before the leaves and hashes are written (inside the transaction).
    WriteEntries,
    /// After the leaves, before the state projection is written.
    WriteState,
    /// After the state, before the checkpoint is signed and the head moved.
    WriteCheckpoint,
    /// Everything written, before `COMMIT`.
    Commit,
    /// After `COMMIT` succeeded: the caller is told the outcome is unknown.
    AfterCommit,
}

impl FaultPoint {
    /// Every point, in commit order.
    pub const ALL: [FaultPoint; 5] = [
        FaultPoint::WriteEntries,
        FaultPoint::WriteState,
        FaultPoint::WriteCheckpoint,
        FaultPoint::Commit,
        FaultPoint::AfterCommit,
    ];

    /// The point's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultPoint::WriteEntries => "write-entries",
            FaultPoint::WriteState => "write-state",
            FaultPoint::WriteCheckpoint => "write-checkpoint",
            FaultPoint::Commit => "commit",
            FaultPoint::AfterCommit => "after-commit",
        }
    }
}

/// Decides, at each point of each commit, whether to fail there.
pub trait FaultInjector: Send + Sync + 'static {
    /// True to fail the commit at `point`.
    fn fail_at(&self, point: FaultPoint) -> bool;
}
