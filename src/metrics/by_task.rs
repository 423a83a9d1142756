//! Reading a report's scores by [`Task`], so callers loop over tasks instead of naming fields.

use super::eval::EvalReport;
use super::prf::Prf;
use crate::task::Task;

impl EvalReport {
    /// The scores of `task`, or `None` when they measure nothing: the data did not allow the
    /// task (no fine types, no masks), or it is in [`EvalReport::not_scored`] (a side carries no
    /// grounding decision). Renderers show `None` as n/a.
    pub fn task(&self, task: Task) -> Option<&Prf> {
        self.task_present(task).filter(|_| self.is_scored(task))
    }

    /// Whether `task` measures something (it is not listed in [`EvalReport::not_scored`]).
    pub fn is_scored(&self, task: Task) -> bool {
        !self.not_scored.contains_key(task.key())
    }

    /// The task's counts as computed, even when [`EvalReport::not_scored`] lists it (tables that
    /// show counts beside an n/a score).
    pub fn task_present(&self, task: Task) -> Option<&Prf> {
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

    /// The tasks this report scored (measured ones only), in [`Task::ALL`] order.
    pub fn scored_tasks(&self) -> impl Iterator<Item = (Task, &Prf)> + '_ {
        Task::ALL
            .into_iter()
            .filter_map(|t| self.task(t).map(|p| (t, p)))
    }
}
