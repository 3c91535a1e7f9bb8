//! The commit protocol of a run date, so a reader never takes a half-replaced date for a whole
//! one:
//!
//! - before the first file of a date is replaced, the date is withdrawn: a `succeeded` manifest
//!   says `running` again, and every pointer naming the date moves back to the newest earlier
//!   date that is still whole (or goes, when there is none);
//! - after the last stage, the manifest says `succeeded` and the pointers move forward.
//!
//! The pointers are small JSON files, each written in one put: `_latest.json` at the output
//! root names the newest date a whole night published (every stage of [`NIGHT`](crate::output::manifest::NIGHT) succeeded), and
//! `<table>/_latest.json` the newest date whose run succeeded and published that table. Readers
//! that follow them (docs/guide/outputs.md: Reading a whole date) read one date's files, all of one run.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::catalog;
use crate::output::manifest::Manifest;
use crate::output::publish::{Draft, DraftFile, DraftTable};
use crate::output::published::{self, MANIFESTS, partition};
use crate::storage::Root;

/// A pointer's file name, at the output root and in each table's folder.
pub(crate) const LATEST: &str = "_latest.json";

/// A pointer: the date a reader should read, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pointer {
    pub(crate) run_date: NaiveDate,
    /// Relative to the output root: the date's manifest (the root's pointer), or the table's
    /// partition folder.
    pub(crate) path: String,
}

/// What a pointer is for: the output as a whole, or one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target<'a> {
    Whole,
    Table(&'a str),
}

impl Target<'_> {
    fn file(&self, output: &Root) -> object_store::path::Path {
        match self {
            Target::Whole => output.path(&[LATEST]),
            Target::Table(table) => output.path(&[table, LATEST]),
        }
    }

    fn pointer(&self, run_date: NaiveDate) -> Pointer {
        let path = match self {
            Target::Whole => Manifest::relative_path(run_date),
            Target::Table(table) => format!("{table}/{}", partition(run_date)),
        };
        Pointer { run_date, path }
    }

    /// Whether a succeeded manifest makes its date one this pointer may name.
    fn admits(&self, manifest: &Manifest) -> bool {
        match self {
            Target::Whole => manifest.is_whole_night(),
            Target::Table(table) => {
                manifest.status == "succeeded" && manifest.published_tables().contains(*table)
            }
        }
    }
}

async fn read(output: &Root, target: Target<'_>) -> Result<Option<Pointer>> {
    let Some(bytes) = output.read_if_exists(&target.file(output)).await? else {
        return Ok(None);
    };
    // A damaged pointer names nothing: the next commit writes it again.
    Ok(serde_json::from_slice(bytes.as_ref()).ok())
}

/// Points `target` at `run_date`, or removes it (`None`).
async fn write(output: &Root, target: Target<'_>, run_date: Option<NaiveDate>) -> Result<()> {
    let file = target.file(output);
    match run_date {
        Some(date) => {
            let mut json = serde_json::to_vec_pretty(&target.pointer(date))
                .map_err(|e| Error::Internal(format!("serializing a pointer: {e}")))?;
            json.push(b'\n');
            output.put_durable(&file, json).await
        }
        None => match output.store.delete(&file).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(format!("removing {}", output.describe(&file)))(e)),
        },
    }
}

/// Publishes a draft's tables and files for its run date, withdrawing the date first.
pub(crate) async fn publish(draft: &Draft, tables: &[DraftTable], files: &[DraftFile]) -> Result<()> {
    // The last moment a stop or a lost lease can keep the date as it was.
    crate::output::lock::safe_point(draft.root())?;
    let names: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
    withdraw(draft.root(), draft.run_date(), &names).await?;
    draft.publish(tables).await?;
    draft.publish_files(files).await
}

/// Withdraws `run_date` before `tables` (and any other file of the date) are replaced: its
/// manifest no longer says `succeeded`, and the output's pointer and those tables' pointers no
/// longer name it.
async fn withdraw(output: &Root, run_date: NaiveDate, tables: &[&str]) -> Result<()> {
    if let Some(mut manifest) = Manifest::read(output, run_date).await?
        && manifest.status == "succeeded"
    {
        manifest.status = "running".into();
        manifest.write(output).await?;
    }
    let mut moving = Vec::new();
    for target in std::iter::once(Target::Whole).chain(tables.iter().copied().map(Target::Table)) {
        if read(output, target)
            .await?
            .is_some_and(|p| p.run_date == run_date)
        {
            moving.push(target);
        }
    }
    if moving.is_empty() {
        return Ok(());
    }
    // The newest earlier date each pointer may name, from the manifests, newest first.
    let mut earlier = published::partitions(output, MANIFESTS).await;
    earlier.retain(|d| *d < run_date);
    earlier.sort_unstable_by(|a, b| b.cmp(a));
    let mut found: BTreeMap<Target<'_>, NaiveDate> = BTreeMap::new();
    for date in earlier {
        if found.len() == moving.len() {
            break;
        }
        let Some(manifest) = Manifest::read(output, date).await? else {
            continue;
        };
        for target in &moving {
            if !found.contains_key(target) && target.admits(&manifest) {
                found.insert(*target, date);
            }
        }
    }
    for target in moving {
        write(output, target, found.get(&target).copied()).await?;
        if target == Target::Whole {
            catalog::write(output, found.get(&target).copied()).await?;
        }
        tracing::info!(
            pointer = ?target,
            from = %run_date,
            to = ?found.get(&target),
            "pointer withdrawn from a date being replaced"
        );
    }
    Ok(())
}

/// Moves the pointers forward to a manifest's date once it says `succeeded`: each table it
/// published, and the output's when the night was whole. A pointer already at a later date
/// stays (a backfill of an older date does not move readers back).
pub(crate) async fn advance(output: &Root, manifest: &Manifest) -> Result<()> {
    let tables = manifest.published_tables();
    let targets = tables
        .iter()
        .map(|t| Target::Table(t.as_str()))
        .chain(std::iter::once(Target::Whole));
    for target in targets {
        if !target.admits(manifest) {
            continue;
        }
        let current = read(output, target).await?;
        if current.is_none_or(|p| p.run_date < manifest.run_date) {
            write(output, target, Some(manifest.run_date)).await?;
            if target == Target::Whole {
                catalog::write(output, Some(manifest.run_date)).await?;
            }
        }
    }
    Ok(())
}
