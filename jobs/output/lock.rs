//! The run lock: one writer per output root at a time.
//!
//! A run creates `<output>/_lock.json` with a create-only put (it fails when the file exists;
//! atomic on a local disk and on S3), holding who took it. A second run stops with a message
//! naming the holder. The lock goes when the run ends, error or not. A run killed with
//! SIGKILL leaves it behind: the next run on the same host sees that the holder's process is
//! gone and takes the lock over; on another host the message says how to remove it by hand.

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Root;

/// The lock file's name below the output root.
pub(crate) const LOCK_FILE: &str = "_lock.json";

/// Who holds the lock.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.command,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

impl Holder {
    fn me(command: &str) -> Self {
        Holder {
            command: command.into(),
            host: host_name(),
            pid: std::process::id(),
            started_at: Utc::now(),
        }
    }

    /// Whether the holder is a process of this host that no longer exists.
    fn is_gone(&self) -> bool {
        // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
        self.host == host_name() && unsafe { libc::kill(self.pid as libc::pid_t, 0) } != 0 && {
            std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

/// A held lock; [`Lock::release`] gives it back.
pub(crate) struct Lock {
    output: Root,
    path: object_store::path::Path,
    /// A local output folder this run created: removed with the lock when still empty, so a
    /// run that fails before writing leaves no trace.
    created: Option<std::path::PathBuf>,
}

impl Lock {
    /// Takes the lock of the output root `output` (creating a local folder) for `command`, or
    /// says who holds it.
    pub(crate) async fn acquire(output: &str, command: &str) -> Result<(Root, Lock)> {
        let created = match Root::open_existing(output)? {
            None => Some(std::path::PathBuf::from(
                output.strip_prefix("file://").unwrap_or(output),
            )),
            Some(_) => None,
        };
        let root = Root::open(output, true)?;
        let lock = Self::acquire_in(&root, command).await;
        match lock {
            Ok(mut lock) => {
                lock.created = created;
                Ok((root, lock))
            }
            Err(e) => Err(e),
        }
    }

    async fn acquire_in(output: &Root, command: &str) -> Result<Lock> {
        let path = output.path(&[LOCK_FILE]);
        let me = Holder::me(command);
        let body = serde_json::to_vec_pretty(&me).expect("a holder serializes");
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        for _ in 0..2 {
            match output
                .store
                .put_opts(&path, PutPayload::from(body.clone()), create.clone())
                .await
            {
                Ok(_) => {
                    return Ok(Lock {
                        output: output.clone(),
                        path,
                        created: None,
                    });
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(match Error::store("taking the lock")(e) {
                        resources @ Error::OutOfResources { .. } => resources,
                        other => Error::OutputUnwritable {
                            output: output.display.clone(),
                            reason: format!("creating {}: {other}", output.describe(&path)),
                        },
                    });
                }
            }
            let holder = read_holder(output, &path).await;
            match holder {
                Some(holder) if holder.is_gone() => {
                    tracing::warn!(%holder, "taking over the lock of a run that is gone (killed?)");
                    output.store.delete(&path).await.map_err(Error::store(format!(
                        "removing the stale lock {}",
                        output.describe(&path)
                    )))?;
                }
                holder => {
                    return Err(Error::Locked {
                        output: output.display.clone(),
                        holder: holder.map_or_else(|| "an unreadable lock file".into(), |h| h.to_string()),
                        lock: output.describe(&path),
                    });
                }
            }
        }
        Err(Error::Locked {
            output: output.display.clone(),
            holder: "another run that took it at the same moment".into(),
            lock: output.describe(&path),
        })
    }

    /// Gives the lock back.
    pub async fn release(self) -> Result<()> {
        self.output
            .store
            .delete(&self.path)
            .await
            .map_err(Error::store(format!(
                "releasing the lock {}",
                self.output.describe(&self.path)
            )))?;
        if let Some(folder) = self.created {
            // Fails, as it should, unless the folder is empty.
            let _ = std::fs::remove_dir(folder);
        }
        Ok(())
    }
}

async fn read_holder(output: &Root, path: &object_store::path::Path) -> Option<Holder> {
    let bytes = output.store.get(path).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Runs `work` holding the lock of the output root `output`; releases it whatever the outcome.
pub(crate) async fn with_lock<T>(
    output: &str,
    command: &str,
    work: impl AsyncFnOnce(&Root) -> Result<T>,
) -> Result<T> {
    let (root, lock) = Lock::acquire(output, command).await?;
    let outcome = work(&root).await;
    let released = lock.release().await;
    let value = outcome?;
    released?;
    Ok(value)
}
