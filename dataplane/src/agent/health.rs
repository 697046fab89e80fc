//! A task's health as its runtime or an operator reports it (`meshctl task health`, the API's
//! `task_health`). The health travels in the task's endpoint record, so every node reads it:
//! `service::backends` keeps only healthy tasks as backends (new flows, `tasks.SVC`, dnsrr
//! names), while conntrack keeps the open flows of a task that turns unhealthy, as for a
//! terminating one.

use super::{Agent, AgentError};
use crate::name_rules::{check, NameKind};
use crate::state::{Change, Health};

impl Agent {
    /// Sets the health of every endpoint of this node's task `task` (a task may sit on several
    /// networks). Returns how many records changed: 0 when it already had that health.
    pub async fn set_task_health(&self, task: &str, health: Health) -> Result<usize, AgentError> {
        check(NameKind::Task, task)?;
        // The agent's lock: an attach or detach of the same task does not interleave with this.
        let _inner = self.inner.lock().await;
        let snapshot = self.gossip.snapshot();
        let mut found = false;
        let changes: Vec<Change> = snapshot
            .state
            .endpoints
            .live()
            .filter(|((owner, _), record)| *owner == self.node_id && record.task.as_deref() == Some(task))
            .filter_map(|((owner, id), record)| {
                found = true;
                (record.health != health).then(|| {
                    let mut record = record.clone();
                    record.health = health;
                    Change::Endpoint { owner: *owner, id: id.clone(), record: Some(record) }
                })
            })
            .collect();
        if !found {
            return Err(AgentError::NoTask(task.to_string()));
        }
        let count = changes.len();
        if count > 0 {
            self.gossip.write(changes).await.map_err(AgentError::Gossip)?;
            tracing::info!(task, %health, endpoints = count, "task health");
        }
        Ok(count)
    }

    /// Sets the health of the task `owner`'s attachment holds (a runtime that reports its
    /// containers' health, as the Docker driver does). Returns how many records changed.
    pub async fn set_owner_health(&self, owner: &str, health: Health) -> Result<usize, AgentError> {
        super::owner_key::validate(owner)?;
        self.rewrite_endpoints(owner, |record| {
            let changed = record.health != health;
            record.health = health;
            changed
        })
        .await
    }
}
