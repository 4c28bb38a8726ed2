//! News between the `serve` replicas that share one PostgreSQL database behind one address:
//! what one of them commits is announced to the open pages and live channels of all, through
//! PostgreSQL's LISTEN/NOTIFY. The database stays the truth: news
//! only says where to look (which project's events, which job's row, the active student), and
//! the live channel's own poll still catches anything a lost notification missed (presence: its
//! periodic refresh). Workers and `distillery teacher` tell too; only servers listen. With
//! SQLite there is one process serving, and nothing to tell.

use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::postgres::PgListener;

use crate::events::ProjectEvents;
use crate::jobs::Jobs;

/// The PostgreSQL notification channel.
const CHANNEL: &str = "distillery_news";

/// What one process tells the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// Box changes or review decisions were committed to the project.
    Committed { project_id: i64 },
    /// A job's row changed (queued, progress, finished).
    Job { project_id: i64, job_id: i64 },
    /// The project's active student changed.
    Student { project_id: i64 },
    /// Who has which of the project's images open changed (the sender's rows in `presence`).
    Presence { project_id: i64 },
}

impl News {
    /// `<sender> <kind> <project> [<job>]`: short, and the sender lets a process skip its own.
    fn encode(self, sender: u64) -> String {
        match self {
            News::Committed { project_id } => format!("{sender} committed {project_id}"),
            News::Job { project_id, job_id } => format!("{sender} job {project_id} {job_id}"),
            News::Student { project_id } => format!("{sender} student {project_id}"),
            News::Presence { project_id } => format!("{sender} presence {project_id}"),
        }
    }

    fn decode(payload: &str) -> Option<(u64, News)> {
        let mut words = payload.split(' ');
        let sender = words.next()?.parse().ok()?;
        let kind = words.next()?;
        let project_id = words.next()?.parse().ok()?;
        let news = match kind {
            "committed" => News::Committed { project_id },
            "job" => News::Job {
                project_id,
                job_id: words.next()?.parse().ok()?,
            },
            "student" => News::Student { project_id },
            "presence" => News::Presence { project_id },
            _ => return None,
        };
        Some((sender, news))
    }
}

/// Where a process sends its news: nowhere on SQLite; cheap to clone.
#[derive(Clone, Default)]
pub struct Fanout(Option<Arc<Sender>>);

struct Sender {
    db: AnyPool,
    /// This process, so its listener skips what it sent itself.
    instance: u64,
    /// Notifications still being sent, so a short-lived process (the CLI) can wait for them.
    sending: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Fanout {
    /// News through `db` when it is PostgreSQL; nothing otherwise.
    pub fn for_database(db: &AnyPool) -> Fanout {
        if crate::db::Engine::of(db) != crate::db::Engine::Postgres {
            return Fanout(None);
        }
        // Two processes drawing the same number would skip each other's news, and fall back on
        // the live channel's poll.
        let instance = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
        Fanout(Some(Arc::new(Sender {
            db: db.clone(),
            instance,
            sending: std::sync::Mutex::new(Vec::new()),
        })))
    }

    /// This process among those sharing the database; `None` on SQLite (it is the only one).
    pub fn instance(&self) -> Option<u64> {
        self.0.as_ref().map(|sender| sender.instance)
    }

    /// Tells the other processes, in the background (the caller has committed already; a
    /// notification that cannot be sent is logged, and the poll covers for it).
    pub fn tell(&self, news: News) {
        let Some(sender) = &self.0 else {
            return;
        };
        let task_sender = sender.clone();
        let task = tokio::spawn(async move {
            let sender = task_sender;
            // Selected through a subquery: `pg_notify` returns `void`, which `Any` cannot carry.
            let sent = sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS sent")
                .bind(CHANNEL)
                .bind(news.encode(sender.instance))
                .execute(&sender.db)
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, ?news, "cannot notify the other processes");
            }
        });
        let mut sending = sender.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sending.retain(|task| !task.is_finished());
        sending.push(task);
    }

    /// Waits until every notification told so far has been sent: a command that exits right
    /// after its job ends would otherwise take the job's last news with it.
    pub async fn flush(&self) {
        let Some(sender) = &self.0 else { return };
        let sending = std::mem::take(&mut *sender.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for task in sending {
            let _ = task.await;
        }
    }

    /// Starts hearing the other processes' news and passing it to this one's open pages, live
    /// channels and job streams, until the process ends. Reconnects by itself when the
    /// connection drops (PgListener does; news sent meanwhile is lost, and the poll covers it).
    pub async fn listen(&self, url: &str, events: ProjectEvents, jobs: Jobs) -> Result<(), sqlx::Error> {
        let Some(sender) = &self.0 else {
            return Ok(());
        };
        let instance = sender.instance;
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => match News::decode(notification.payload()) {
                        Some((from, _)) if from == instance => {}
                        Some((_, news)) => hear(news, &events, &jobs),
                        None => tracing::warn!(payload = notification.payload(), "unreadable news"),
                    },
                    Err(error) => {
                        tracing::warn!(%error, "lost the news connection; reconnecting");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Passes another process's news to this one's listeners, without telling anyone again.
fn hear(news: News, events: &ProjectEvents, jobs: &Jobs) {
    match news {
        News::Committed { project_id } => events.live.committed_elsewhere(project_id),
        News::Job { project_id, job_id } => jobs.changed_elsewhere(project_id, job_id),
        News::Student { project_id } => events.student_changed_elsewhere(project_id),
        News::Presence { project_id } => events.live.presence_elsewhere(project_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_reads_back_as_written() {
        for news in [
            News::Committed { project_id: 7 },
            News::Job {
                project_id: 7,
                job_id: 42,
            },
            News::Student { project_id: 1 },
            News::Presence { project_id: 3 },
        ] {
            assert_eq!(News::decode(&news.encode(u64::MAX)), Some((u64::MAX, news)));
        }
        assert_eq!(News::decode("1 job 7"), None);
        assert_eq!(News::decode("x committed 7"), None);
        assert_eq!(News::decode("1 unknown 7"), None);
    }
}
