//! Where the SQL models run: in this process (`local`, the default) or on an Apache DataFusion
//! Ballista cluster (`ballista://HOST:PORT`, the scheduler's address).
//!
//! On a cluster the session in this process still plans every model, registers the inputs and
//! the drafts, and publishes; Ballista's query planner sends each query's plan to the scheduler,
//! and its executors read and write the files. So the input and output roots must be the same
//! path on every executor (a shared folder) or an object store. The model stages (segment,
//! churn, clv, report) read the published marts back in this process, as on one machine.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::{BALLISTA_SCHEME, Engine};
use crate::error::{Error, Result};

impl Engine {
    /// A session configured the way every stage wants it, planning for this engine: on a
    /// cluster, queries run there once the scheduler answers.
    pub async fn session(&self) -> Result<SessionContext> {
        match self {
            Engine::Local => Ok(new_session()),
            Engine::Ballista { scheduler } => remote_session(scheduler).await,
        }
    }
}

/// Refuses a wildcard listening address (`0.0.0.0`, `::`) unless `insecure` was passed: a
/// Ballista scheduler or executor has no authentication and no TLS, and runs any plan sent to
/// it with its own credentials (every `s3://` bucket its environment opens), so it listens on
/// one interface of a private network, not on every interface of the machine.
pub fn check_listen_address(bind: &str, insecure: bool) -> Result<()> {
    let wildcard = bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if wildcard && !insecure {
        return Err(Error::Usage(format!(
            "--bind {bind} listens on every interface, and Ballista has no authentication or TLS: anyone who reaches the port runs queries with this process's credentials. Bind the private interface's address (--bind 10.0.0.5), or pass --insecure-bind-all behind a firewall that admits only the cluster (docs/design/ballista.md: Security)"
        )));
    }
    Ok(())
}

/// The process's memory pool, when capped.
static MEMORY_POOL: OnceLock<Arc<dyn MemoryPool>> = OnceLock::new();

/// Whether this process runs under a memory cap (`--memory-limit`): queries then prefer plans
/// that spill, sorts and aggregations, over hash joins, whose build sides cannot.
pub(crate) fn memory_capped() -> bool {
    MEMORY_POOL.get().is_some()
}

/// The smallest cap accepted: below it the KPI models' aggregations, sharing the pool fairly,
/// cannot hold one batch each (measured on the sample: 512 MiB fails, 1 GiB runs).
pub(crate) const MIN_MEMORY_LIMIT: usize = 1 << 30;

/// Caps the memory that DataFusion's sorts, aggregations and joins use in this process, all
/// sessions together; beyond it they spill to the temp folder. A memory cap belongs to a
/// process, so it is set once, by a binary's `--memory-limit`, and never by library code.
pub(crate) fn limit_memory(bytes: usize) -> Result<()> {
    if bytes < MIN_MEMORY_LIMIT {
        return Err(Error::BadConfig {
            file: "--memory-limit".into(),
            reason: format!(
                "{bytes} bytes is below the smallest cap, {} MiB",
                MIN_MEMORY_LIMIT >> 20
            ),
        });
    }
    // The five largest consumers are named in the error when the cap is reached.
    let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
        FairSpillPool::new(bytes),
        NonZeroUsize::new(5).expect("5 > 0"),
    ));
    let _ = MEMORY_POOL.set(pool);
    Ok(())
}

/// The options every query wants, on the local engine and on a cluster alike.
pub(crate) fn session_config() -> SessionConfig {
    SessionConfig::new()
        // Plain Utf8 strings end to end: what every outside reader and Ballista expect.
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .set_str("datafusion.execution.parquet.compression", "zstd(3)")
        // A partial aggregation that keeps more than 70% of its input rows is skipped (0.8 by
        // default): grouping orders by (customer, day) keeps about 75% of them, so the partial
        // step did the final step's work twice (docs/design/performance.md: Side by side with the peer).
        .set_str(
            "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
            "0.7",
        )
}

/// A session of this process configured the way every stage wants it, under its memory cap
/// when it has one.
pub fn new_session() -> SessionContext {
    let config = session_config();
    let Some(pool) = MEMORY_POOL.get() else {
        return SessionContext::new_with_config(config);
    };
    // Under a cap (docs/design/performance.md: Bounded memory), batches of 1,024 rows: the fair pool gives each
    // spillable operator of a plan an equal share (about 70 of them in the KPI models), and a
    // grouped aggregation must fit one batch's state in its share. Joins stay hash joins,
    // whose build sides cannot spill: with sort-merge joins (prefer_hash_join = false)
    // DataFusion 55 returned stg_kpi_statuses out of its `order by` on the sample.
    let config = config.with_batch_size(1024);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .build_arc()
        .expect("a runtime with a memory pool and the default disk manager builds");
    SessionContext::new_with_config_rt(config, runtime)
}

/// How long to wait for a scheduler to answer before the run fails.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn unreachable(scheduler: &str, reason: impl fmt::Display) -> Error {
    Error::EngineUnavailable {
        engine: format!("{BALLISTA_SCHEME}{scheduler}"),
        reason: reason.to_string(),
    }
}

/// Checks that a scheduler listens at `scheduler` (`host:port`), so a wrong address fails at
/// once, before any input is read, with a message that says so.
fn check_reachable(scheduler: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let addresses: Vec<_> = scheduler
        .to_socket_addrs()
        .map_err(|e| unreachable(scheduler, e))?
        .collect();
    let mut last = None;
    for address in addresses {
        match std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable(
        scheduler,
        last.map_or("the name resolves to no address".to_string(), |e| {
            format!("{e}; start one with growth-scheduler (docs/design/ballista.md: Running on a Ballista cluster)")
        }),
    ))
}

/// The options a Ballista job runs with: [`session_config`]'s, not this
/// process's session's. Under `--memory-limit` that session reads 1,024-row batches (its one
/// pool is shared fairly by every operator of a plan), and the executors would get them too,
/// each batch a shuffle write, an IPC message and a Flight frame, several times slower than
/// DataFusion's 8,192-row batches (docs/design/ballista.md). The executors' own
/// `--memory-limit` bounds their tasks.
#[cfg(feature = "ballista")]
fn remote_config() -> datafusion::prelude::SessionConfig {
    use ballista::prelude::SessionConfigExt;

    // Shuffle partitions held by another executor come over Arrow Flight, not Ballista's
    // faster raw-block transfer: in Ballista 55 the block reader decodes IPC messages straight
    // from the network buffers, and a message that lands at an unaligned offset fails the
    // task ("Ipc error: Parser error: Unable to get root as message: Unaligned"). Seen on the
    // sample without its optional tables; the stage is then resubmitted and the query hangs.
    session_config()
        .upgrade_for_ballista()
        .with_ballista_shuffle_reader_remote_prefer_flight(true)
        // The static distributed planner: the adaptive one (the default in 55) kept adding
        // stages to stg_kpi_daily_counts on the sample without its optional tables (8,000 in
        // five minutes) and the query never finished.
        .with_ballista_adaptive_query_planner(false)
        // Hash joins, as locally, not the sort-merge joins Ballista prefers (they spill, hash
        // joins' build sides do not): DataFusion 55's sort-merge join has no comparator for
        // timestamp keys ("Unsupported data type in sort merge join comparator: Timestamp",
        // daily_sales at 1M customers), and it returned stg_kpi_statuses out of order locally.
        .set_bool("datafusion.optimizer.prefer_hash_join", true)
        // No broadcast (CollectLeft) hash joins: every join shuffles both sides by its keys.
        // Ballista 55 turns small build sides into broadcast joins, and a broadcast left join
        // lost half its rows: kpi_daily (a left join of the measures to their statuses) came
        // back with 69,350 of 138,700 rows on the 2,000-customer sample, and at 1M customers
        // kpi_monthly and kpi_daily with about half theirs. Ballista's guard that demotes a
        // broadcast join whose type is not broadcast-safe (a left join is not) did not apply
        // to our write plans. Both families of thresholds are zeroed: DataFusion's join
        // selection on this client, and Ballista's own promotion on the scheduler.
        .set_u64("datafusion.optimizer.hash_join_single_partition_threshold", 0)
        .set_u64(
            "datafusion.optimizer.hash_join_single_partition_threshold_rows",
            0,
        )
        .with_ballista_broadcast_join_threshold_bytes(0)
        .with_ballista_broadcast_join_threshold_rows(0)
}

#[cfg(feature = "ballista")]
async fn remote_session(scheduler: &str) -> Result<SessionContext> {
    use ballista::prelude::SessionContextExt;
    use datafusion::execution::session_state::SessionStateBuilder;

    check_reachable(scheduler)?;
    let state = SessionStateBuilder::new()
        .with_config(remote_config())
        .with_default_features()
        .build();
    SessionContext::remote_with_state(&format!("df://{scheduler}"), state)
        .await
        .map_err(|e| unreachable(scheduler, e))
}

#[cfg(not(feature = "ballista"))]
async fn remote_session(scheduler: &str) -> Result<SessionContext> {
    check_reachable(scheduler)?;
    Err(Error::Usage(format!(
        "--engine {BALLISTA_SCHEME}{scheduler}: this build has no Ballista client; build with \
         `cargo build --release --features ballista`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_need_the_insecure_flag() {
        for wildcard in ["0.0.0.0", "::", "[::]"] {
            assert!(check_listen_address(wildcard, false).is_err(), "{wildcard}");
            assert!(check_listen_address(wildcard, true).is_ok(), "{wildcard}");
        }
        for one in ["127.0.0.1", "10.0.0.5", "::1", "sched.internal"] {
            assert!(check_listen_address(one, false).is_ok(), "{one}");
        }
    }

    #[test]
    fn engines_parse_and_print_back() {
        assert_eq!("local".parse::<Engine>(), Ok(Engine::Local));
        let engine: Engine = "ballista://10.0.0.5:50050".parse().unwrap();
        assert_eq!(
            engine,
            Engine::Ballista {
                scheduler: "10.0.0.5:50050".into()
            }
        );
        assert_eq!(engine.to_string(), "ballista://10.0.0.5:50050");
        for bad in [
            "spark://x:1",
            "ballista://nohost",
            "ballista://:50050",
            "ballista://h:port",
        ] {
            assert!(bad.parse::<Engine>().is_err(), "{bad} should not parse");
        }
    }

    /// What a job sends the cluster: the options every query wants, DataFusion's full batches
    /// (never the 1,024-row ones of a capped client), and the planner settings that keep
    /// results equal to the local engine's.
    #[cfg(feature = "ballista")]
    #[test]
    fn a_cluster_job_gets_the_shared_options_and_full_batches() {
        use ballista::prelude::SessionConfigExt;

        let job = remote_config();
        let shared = session_config();
        assert_eq!(
            job.batch_size(),
            datafusion::prelude::SessionConfig::new().batch_size()
        );
        assert_eq!(
            job.options().execution.parquet.compression,
            shared.options().execution.parquet.compression
        );
        let ballista = job.ballista_config();
        assert_eq!(ballista.broadcast_join_threshold_bytes(), 0);
        assert_eq!(ballista.broadcast_join_threshold_rows(), 0);
        assert!(!ballista.adaptive_query_planner_enabled());
        assert!(ballista.shuffle_reader_remote_prefer_flight());
        assert!(job.options().optimizer.prefer_hash_join);
    }

    #[test]
    fn an_absent_scheduler_is_named_in_the_error() {
        // A port nothing listens on: bind one, learn its number, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = check_reachable(&format!("127.0.0.1:{port}")).unwrap_err();
        assert_eq!(error.exit_code(), crate::error::exit_code::INTERNAL);
        assert!(
            error
                .to_string()
                .contains(&format!("ballista://127.0.0.1:{port}")),
            "{error}"
        );
    }
}
