//! The run lock: one writer per output root at a time, held as a lease.
//!
//! `<output>/_lock.json` names its holder and when the lease expires. A run takes it with a
//! create-only write, renews it from a thread of its own while it lives, and gives it back at
//! the end, error or not. Every change after the first write is conditional on the version
//! read: on S3 an `If-Match` on the object's ETag; on a local disk a compare of the bytes
//! under an exclusive `flock` of the output folder (LocalFileSystem has no conditional
//! update). So two runs never both hold it, from any hosts.
//!
//! A lease that expired (its holder was killed, or lost its host) is taken over from any host;
//! a holder on this host and in this pid namespace whose process is gone is taken over at once.
//! On S3 a release leaves a record marked released (S3 has no conditional delete); a local
//! release removes the file. `unlock` removes a lock by hand.
//!
//! SIGTERM and SIGINT, while a lock is held, ask the run to stop at the next safe point (see
//! [`safe_point`]); a second signal ends the process at once, and the lease then expires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Root;

/// The lock file's name below the output root.
pub(crate) const LOCK_FILE: &str = "_lock.json";
/// The environment variable setting the lease, in seconds (`90`) or with a unit (`90s`, `5m`).
pub const LEASE_VARIABLE: &str = "GROWTH_LOCK_LEASE";
/// The environment variable naming this run in the lock instead of the host name (a pod's or
/// a worker's name).
pub const HOST_VARIABLE: &str = "GROWTH_LOCK_HOST";
/// A lease long enough for two renewals to fail before it expires, short enough that a run
/// killed without a release blocks the next one for two minutes at most.
const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Who holds the lock, until when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub command: String,
    pub host: String,
    pub pid: u32,
    /// The pid namespace of the holder (`pid:[4026531836]`): a pid means nothing outside it.
    #[serde(default)]
    pub pid_namespace: Option<String>,
    /// This run's own mark: a renewal or a release checks that the lock is still its own.
    #[serde(default)]
    pub token: String,
    pub started_at: DateTime<Utc>,
    /// When the lease ends unless renewed; absent in locks of older versions.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the holder gave the lock back but could not delete the file (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {}",
            self.command,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        )?;
        match self.expires_at {
            Some(at) => write!(f, ", lease until {})", at.format("%Y-%m-%d %H:%M:%S UTC")),
            None => write!(f, ")"),
        }
    }
}

impl Holder {
    fn me(command: &str, lease: Duration) -> Self {
        let started_at = Utc::now();
        let host = host_name();
        let pid = std::process::id();
        Holder {
            command: command.into(),
            token: format!(
                "{host}/{pid}/{}",
                started_at.timestamp_nanos_opt().unwrap_or_default()
            ),
            host,
            pid,
            pid_namespace: pid_namespace(),
            started_at,
            expires_at: Some(started_at + lease),
            released_at: None,
        }
    }

    /// Why the lock may be taken from this holder, or None while it holds.
    fn free_because(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.released_at.is_some() {
            Some("released")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("its lease expired")
        } else if self.is_gone() {
            Some("its process is gone")
        } else {
            None
        }
    }

    /// Whether the holder is a process of this host and pid namespace that no longer exists.
    fn is_gone(&self) -> bool {
        let here = self.host == host_name()
            && (self.pid_namespace.is_none() || self.pid_namespace == pid_namespace());
        // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
        here && unsafe { libc::kill(self.pid as libc::pid_t, 0) } != 0 && {
            std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a holder serializes")
    }
}

fn host_name() -> String {
    if let Ok(name) = std::env::var(HOST_VARIABLE) {
        return name;
    }
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "unknown-host".into(),
    }
}

fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// The lease from the environment, or the default.
fn lease() -> Result<Duration> {
    let Ok(text) = std::env::var(LEASE_VARIABLE) else {
        return Ok(DEFAULT_LEASE);
    };
    crate::config::parse_duration(&text).map_err(|e| Error::Usage(format!("{LEASE_VARIABLE}: {e}")))
}

/// The lock file of an output root and the conditional writes it takes.
#[derive(Clone)]
struct LockFile {
    root: Root,
    path: Path,
}

/// The version of the lock file a conditional write expects to replace.
struct Seen {
    bytes: Vec<u8>,
    version: UpdateVersion,
}

/// An exclusive `flock` of a local output folder, held while a local lock file is compared and
/// changed; released when dropped (the descriptor closes).
struct FolderGuard(#[allow(dead_code)] std::fs::File);

impl LockFile {
    fn of(root: &Root) -> Self {
        LockFile {
            root: root.clone(),
            path: root.path(&[LOCK_FILE]),
        }
    }

    fn describe(&self) -> String {
        self.root.describe(&self.path)
    }

    fn failed(&self, doing: &str) -> impl FnOnce(object_store::Error) -> Error {
        Error::store(format!("{doing} the lock {}", self.describe()))
    }

    fn guard(&self) -> Result<Option<FolderGuard>> {
        let Some(folder) = &self.root.local else {
            return Ok(None);
        };
        let failed = Error::io(format!(
            "locking the folder {} to change its lock",
            folder.display()
        ));
        let file = std::fs::File::open(folder).map_err(Error::io(format!("opening {}", folder.display())))?;
        // SAFETY: flock on a descriptor this function owns.
        match unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } {
            0 => Ok(Some(FolderGuard(file))),
            _ => Err(failed(std::io::Error::last_os_error())),
        }
    }

    async fn read(&self) -> Result<Option<Seen>> {
        match self.root.store.get(&self.path).await {
            Ok(found) => {
                let version = UpdateVersion {
                    e_tag: found.meta.e_tag.clone(),
                    version: found.meta.version.clone(),
                };
                let bytes = found.bytes().await.map_err(self.failed("reading"))?;
                Ok(Some(Seen {
                    bytes: bytes.to_vec(),
                    version,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("reading")(e)),
        }
    }

    /// Writes `bytes` when there is no lock file; false when there is one.
    async fn create(&self, bytes: Vec<u8>) -> Result<bool> {
        if self.root.local.is_some() {
            let _guard = self.guard()?;
            if self.read().await?.is_some() {
                return Ok(false);
            }
            self.root.put_durable(&self.path, bytes).await?;
            return Ok(true);
        }
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .root
            .store
            .put_opts(&self.path, PutPayload::from(bytes), create)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.failed("creating")(e)),
        }
    }

    /// Replaces the lock file with `bytes` when it is still the version `seen`; false when it
    /// changed (or went) since. `None` removes it where the store can (a local disk) and
    /// writes `released` where it cannot.
    async fn replace(&self, seen: &Seen, bytes: Option<Vec<u8>>, released: Vec<u8>) -> Result<bool> {
        if self.root.local.is_some() {
            let _guard = self.guard()?;
            if self.read().await?.is_none_or(|now| now.bytes != seen.bytes) {
                return Ok(false);
            }
            match bytes {
                Some(bytes) => self.root.put_durable(&self.path, bytes).await?,
                None => {
                    self.root
                        .store
                        .delete(&self.path)
                        .await
                        .map_err(self.failed("removing"))?;
                    self.root.sync_folder_of(&self.path)?;
                }
            }
            return Ok(true);
        }
        let update = PutOptions {
            mode: PutMode::Update(seen.version.clone()),
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.unwrap_or(released));
        match self.root.store.put_opts(&self.path, payload, update).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed("updating")(e)),
        }
    }
}

/// What an unreadable lock file (which no writer leaves: every write replaces it whole) is
/// taken as: nobody's.
fn holder_of(seen: &Seen) -> Option<Holder> {
    serde_json::from_slice(&seen.bytes).ok()
}

/// The signal that asked this process to stop (0: none).
static STOP: AtomicI32 = AtomicI32::new(0);

/// The leases this process holds, by lock file, with whether each was lost.
static HELD: Mutex<Option<HashMap<String, Arc<AtomicBool>>>> = Mutex::new(None);

/// Stops the work at a safe point: when a signal asked the process to stop, or when the
/// lease of `output`'s lock was lost (another run took it over), an error says so and
/// nothing more is published.
pub(crate) fn safe_point(output: &Root) -> Result<()> {
    if let Some(signal) = stop_signal() {
        return Err(Error::Stopped { signal });
    }
    let file = LockFile::of(output);
    let lost = HELD
        .lock()
        .expect("the lease table is never poisoned")
        .as_ref()
        .and_then(|held| held.get(&file.describe()).cloned())
        .is_some_and(|lost| lost.load(Ordering::SeqCst));
    if lost {
        return Err(Error::LostLock {
            output: output.display.clone(),
            lock: file.describe(),
        });
    }
    Ok(())
}

fn stop_signal() -> Option<&'static str> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

/// Runs `work` unless a signal asks the process to stop first: a long query is dropped (and
/// with it its draft) rather than waited for.
pub(crate) async fn until_stopped<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let stopped = async {
        loop {
            if let Some(signal) = stop_signal() {
                return signal;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        done = work => done,
        signal = stopped => Err(Error::Stopped { signal }),
    }
}

/// A held lock; [`Lock::release`] gives it back.
pub(crate) struct Lock {
    file: LockFile,
    me: Holder,
    lost: Arc<AtomicBool>,
    renewal: Option<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
    /// A local output folder this run created: removed with the lock when still empty, so a
    /// run that fails before writing leaves no trace.
    created: Option<std::path::PathBuf>,
}

impl Lock {
    /// Takes the lock of the output root `output` (creating a local folder) for `command`, or
    /// says who holds it.
    pub(crate) async fn acquire(output: &str, command: &str) -> Result<(Root, Lock)> {
        let lease = lease()?;
        let created = match Root::open_existing(output)? {
            None => Some(std::path::PathBuf::from(
                output.strip_prefix("file://").unwrap_or(output),
            )),
            Some(_) => None,
        };
        let root = Root::open(output, true)?;
        let file = LockFile::of(&root);
        let me = Holder::me(command, lease);
        if let Err(e) = take(&file, &me).await.map_err(|e| unwritable(&file, e)) {
            if let Some(folder) = created {
                let _ = std::fs::remove_dir(folder);
            }
            return Err(e);
        }
        let lost = Arc::new(AtomicBool::new(false));
        HELD.lock()
            .expect("the lease table is never poisoned")
            .get_or_insert_default()
            .insert(file.describe(), lost.clone());
        let renewal = renew_in_background(file.clone(), me.clone(), lease, lost.clone());
        Ok((
            root,
            Lock {
                file,
                me,
                lost,
                renewal: Some(renewal),
                created,
            },
        ))
    }

    /// Gives the lock back, unless another run took it over meanwhile.
    pub async fn release(mut self) -> Result<()> {
        if let Some((stop, thread)) = self.renewal.take() {
            let _ = stop.send(());
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        HELD.lock()
            .expect("the lease table is never poisoned")
            .get_or_insert_default()
            .remove(&self.file.describe());
        let released = Holder {
            released_at: Some(Utc::now()),
            ..self.me.clone()
        };
        let mine = self.file.read().await?.filter(|seen| {
            holder_of(seen).is_some_and(|h| h.token == self.me.token && h.released_at.is_none())
        });
        match mine {
            Some(seen) => {
                if !self.file.replace(&seen, None, released.to_bytes()).await? {
                    tracing::warn!(
                        lock = self.file.describe(),
                        "the lock changed while being released"
                    );
                }
            }
            None => tracing::warn!(
                lock = self.file.describe(),
                "the lock is no longer this run's (its lease was taken over): left as it is"
            ),
        }
        if let Some(folder) = &self.created {
            // Fails, as it should, unless the folder is empty.
            let _ = std::fs::remove_dir(folder);
        }
        if self.lost.load(Ordering::SeqCst) {
            tracing::warn!(
                lock = self.file.describe(),
                "this run's lease was lost while it ran"
            );
        }
        Ok(())
    }
}

/// A lock that cannot be written is an output that cannot be (exit 6), unless another run holds
/// it or the disk is full.
fn unwritable(file: &LockFile, error: Error) -> Error {
    match error {
        held @ (Error::Locked { .. } | Error::OutOfResources { .. }) => held,
        other => Error::OutputUnwritable {
            output: file.root.display.clone(),
            reason: format!("taking the lock {}: {other}", file.describe()),
        },
    }
}

/// Takes the lock for `me`: creates the file, or replaces a holder that is free.
async fn take(file: &LockFile, me: &Holder) -> Result<()> {
    let now = Utc::now();
    for _ in 0..3 {
        if file.create(me.to_bytes()).await? {
            return Ok(());
        }
        let Some(seen) = file.read().await? else {
            continue;
        };
        let holder = holder_of(&seen);
        let why = match &holder {
            None => Some("its lock file is unreadable"),
            Some(holder) => holder.free_because(now),
        };
        match why {
            Some(why) => {
                if let Some(holder) = &holder
                    && holder.released_at.is_none()
                {
                    tracing::warn!(%holder, "taking over the lock: {why}");
                }
                if file.replace(&seen, Some(me.to_bytes()), Vec::new()).await? {
                    return Ok(());
                }
            }
            None => {
                return Err(Error::Locked {
                    output: file.root.display.clone(),
                    holder: holder.map_or_else(String::new, |h| h.to_string()),
                    lock: file.describe(),
                });
            }
        }
    }
    Err(Error::Locked {
        output: file.root.display.clone(),
        holder: "another run that took it at the same moment".into(),
        lock: file.describe(),
    })
}

/// Renews the lease every third of its length from a thread and runtime of its own (a busy
/// engine cannot delay it), and turns SIGTERM and SIGINT into a stop at the next safe point.
/// Marks the lease lost when the lock is no longer this run's or could not be renewed before
/// it expired.
fn renew_in_background(
    file: LockFile,
    me: Holder,
    lease: Duration,
    lost: Arc<AtomicBool>,
) -> (tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(%e, "cannot start the lease's runtime: the lease is not renewed");
                return;
            }
        };
        runtime.block_on(async move {
            // Its own store, so no connection of it belongs to another runtime.
            let file = match Root::open(&file.root.display, false) {
                Ok(root) => LockFile::of(&root),
                Err(_) => file,
            };
            use tokio::signal::unix::{SignalKind, signal};
            let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            {
                (Ok(term), Ok(int)) => (term, int),
                _ => {
                    tracing::warn!("cannot listen for SIGTERM and SIGINT: they end the run at once");
                    return renew_until_stopped(&file, me, lease, &lost, &mut stopped).await;
                }
            };
            let signalled = async {
                loop {
                    let number = tokio::select! {
                        _ = term.recv() => libc::SIGTERM,
                        _ = int.recv() => libc::SIGINT,
                    };
                    if STOP.swap(number, Ordering::SeqCst) != 0 {
                        // A second signal: the caller will not wait for a safe point.
                        std::process::exit(128 + number);
                    }
                    tracing::warn!(
                        "stop asked: the run stops at the next safe point (a second signal ends it at once)"
                    );
                }
            };
            tokio::select! {
                () = renew_until_stopped(&file, me, lease, &lost, &mut stopped) => {}
                () = signalled => {}
            }
        });
    });
    (stop, thread)
}

async fn renew_until_stopped(
    file: &LockFile,
    mut me: Holder,
    lease: Duration,
    lost: &AtomicBool,
    stopped: &mut tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut *stopped => return,
            () = tokio::time::sleep(lease / 3) => {}
        }
        let expired = me.expires_at.is_some_and(|at| at <= Utc::now());
        let renewed = Holder {
            expires_at: Some(Utc::now() + lease),
            ..me.clone()
        };
        let outcome = match file.read().await {
            Ok(Some(seen))
                if holder_of(&seen).is_some_and(|h| h.token == me.token && h.released_at.is_none()) =>
            {
                file.replace(&seen, Some(renewed.to_bytes()), Vec::new()).await
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => me = renewed,
            Ok(false) => {
                tracing::error!(
                    lock = file.describe(),
                    "the lock was taken over: this run publishes nothing more"
                );
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) if expired => {
                tracing::error!(%e, "the lease expired before it could be renewed: this run publishes nothing more");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(%e, "renewing the lease failed; retrying"),
        }
    }
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

/// What `unlock` did.
pub enum Unlocked {
    /// There was no lock (or only a released one).
    Nothing,
    /// The lock of this holder was removed.
    Removed(String),
}

/// Removes the lock of `output` (the `unlock` command): one whose holder is free (its lease
/// expired, or its process on this host is gone), or, with `force`, one that still looks
/// alive. Conditional on the version read: a lock renewed meanwhile stays.
pub async fn unlock(output: &str, force: bool) -> Result<Unlocked> {
    let Some(root) = Root::open_existing(output)? else {
        return Ok(Unlocked::Nothing);
    };
    let file = LockFile::of(&root);
    let Some(seen) = file.read().await? else {
        return Ok(Unlocked::Nothing);
    };
    let holder = holder_of(&seen);
    if holder.as_ref().is_some_and(|h| h.released_at.is_some()) {
        return Ok(Unlocked::Nothing);
    }
    let named = holder
        .as_ref()
        .map_or_else(|| "an unreadable lock file".into(), |h| h.to_string());
    let free = holder
        .as_ref()
        .is_none_or(|h| h.free_because(Utc::now()).is_some());
    if !free && !force {
        return Err(Error::Locked {
            output: root.display.clone(),
            holder: format!("{named}, which looks alive (pass --force if you know it is not)"),
            lock: file.describe(),
        });
    }
    let released = match holder {
        Some(h) => Holder {
            released_at: Some(Utc::now()),
            ..h
        }
        .to_bytes(),
        None => b"{}".to_vec(),
    };
    match file.replace(&seen, None, released).await? {
        true => Ok(Unlocked::Removed(named)),
        false => Err(Error::Locked {
            output: root.display.clone(),
            holder: "a run that renewed or took the lock while it was being removed".into(),
            lock: file.describe(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(expires_in: i64) -> Holder {
        Holder {
            command: "nightly".into(),
            host: "elsewhere".into(),
            pid: 1,
            pid_namespace: None,
            token: "t".into(),
            started_at: Utc::now(),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(expires_in)),
            released_at: None,
        }
    }

    #[test]
    fn a_holder_elsewhere_is_free_only_when_released_or_expired() {
        let now = Utc::now();
        assert_eq!(holder(60).free_because(now), None);
        assert_eq!(holder(-1).free_because(now), Some("its lease expired"));
        let released = Holder {
            released_at: Some(now),
            ..holder(60)
        };
        assert_eq!(released.free_because(now), Some("released"));
    }

    #[test]
    fn a_dead_pid_frees_a_holder_only_in_this_host_and_pid_namespace() {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let mine = Holder {
            host: host_name(),
            pid: gone.id(),
            pid_namespace: pid_namespace(),
            ..holder(60)
        };
        assert_eq!(mine.free_because(Utc::now()), Some("its process is gone"));
        let other_namespace = Holder {
            pid_namespace: Some("pid:[1]".into()),
            ..mine.clone()
        };
        assert_eq!(other_namespace.free_because(Utc::now()), None);
        let alive = Holder {
            pid: std::process::id(),
            ..mine
        };
        assert_eq!(alive.free_because(Utc::now()), None);
    }
}
