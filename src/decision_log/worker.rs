//! A sink's own background thread for its blocking work (writing a batch
//! to a file or standard output, joining and gzipping an HTTP body).
//!
//! Not tokio's blocking pool: its threads run at normal priority, so a
//! half-megabyte gzip there competes with admission requests for a core
//! (at one connection, the unreachable-HTTP-sink benchmark's p99 was up to
//! 1.45× the log off). This thread is scheduled as the encoder is (nice 19,
//! the shortest slice: [`crate::rollout::background`]), and each sink has
//! its own, so a stuck standard output never holds up a file or an HTTP
//! sink.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The thread ended or could not start; the work was not done.
#[derive(Debug, thiserror::Error)]
#[error("the decision log's {0} worker thread is gone")]
pub struct WorkerGone(pub &'static str);

/// One background thread running closures in order.
#[derive(Debug)]
pub struct Worker {
    label: &'static str,
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread (`decision-log-LABEL`).
    pub fn start(label: &'static str) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("decision-log-{label}"))
            .spawn(move || {
                for e in crate::rollout::background::lower_this_thread() {
                    tracing::warn!(sink = label, error = %e, "decision log sink thread at normal priority");
                }
                // Ends when the worker (the sender) is dropped.
                for job in rx {
                    job();
                }
            })?;
        Ok(Self { label, jobs })
    }

    /// Runs `f` on the thread and waits (asynchronously) for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, WorkerGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| WorkerGone(self.label))?;
        rx.await.map_err(|_| WorkerGone(self.label))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_on_a_background_thread() {
        let w = Worker::start("test").unwrap();
        let first = w
            .run(|| {
                let t = std::thread::current();
                (
                    t.name().map(str::to_string),
                    crate::rollout::background::this_thread().map(|(nice, _)| nice),
                )
            })
            .await
            .unwrap();
        assert_eq!(first.0.as_deref(), Some("decision-log-test"));
        if let Ok(nice) = first.1 {
            assert_eq!(nice, crate::rollout::background::NICE);
        }
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..5 {
            let o = order.clone();
            w.run(move || o.lock().unwrap().push(i)).await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }
}
