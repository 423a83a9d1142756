//! Reading a report's scores by [`Task`], so callers loop over tasks instead of naming fields.

use super::eval::EvalReport;
use super::prf::Prf;
use crate::task::Task;

impl EvalReport {
    /// The scores of `task`, or `None` when the data did not allow it (no fine types, no masks).
    pub fn task(&self, task: Task) -> Option<&Prf> {
        match task {
            Task::Mner => Some(&self.mner),
            Task::Eeg => Some(&self.eeg),
            Task::Gmner => Some(&self.gmner),
            Task::Fmner => self.fmner.as_ref(),
            Task::Fmnerg => self.fmnerg.as_ref(),
            Task::FmnergCoarse => self.fmnerg_coarse.as_ref(),
            Task::Smner => self.smner.as_ref(),
        }
    }

    /// The tasks this report scored, in [`Task::ALL`] order.
    pub fn scored_tasks(&self) -> impl Iterator<Item = (Task, &Prf)> + '_ {
        Task::ALL
            .into_iter()
            .filter_map(|t| self.task(t).map(|p| (t, p)))
    }
}
