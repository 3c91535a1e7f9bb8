//! Our Ballista scheduler and executor (`growth-scheduler`, `growth-executor`): the stock
//! Apache DataFusion Ballista servers, built from the `ballista-scheduler` and
//! `ballista-executor` library crates in this project's one dependency graph, so a cluster runs
//! the same DataFusion, with the same functions, as the client that plans the SQL models.
//! Installing the stock binaries instead takes about 40 minutes on 2 cores (each brings its own
//! DataFusion build). Only behind the `ballista` cargo feature.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_executor::execution_engine::{DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::ScalarUDF;

use crate::error::{Error, Result};
use crate::input::quality::key_hash;
use crate::storage::EnvObjectStores;

/// How a scheduler listens and when it gives up on an executor.
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// The address to listen on: this machine's address on the cluster's private network.
    #[arg(long, env = "GROWTH_SCHEDULER_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// Allow --bind 0.0.0.0 (every interface): Ballista has no authentication or TLS.
    #[arg(long)]
    pub insecure_bind_all: bool,
    /// The port clients (`--engine ballista://HOST:PORT`) and executors connect to.
    #[arg(long, env = "GROWTH_SCHEDULER_PORT", default_value_t = 50050)]
    pub port: u16,
    /// The host name executors and clients reach this scheduler at.
    #[arg(long, default_value = "localhost")]
    pub external_host: String,
    /// Seconds without a heartbeat after which an executor counts as lost: its running tasks
    /// are scheduled again on the others, and the stages whose shuffle output it held rerun.
    #[arg(long, default_value_t = 180)]
    pub executor_timeout_seconds: u64,
    /// Seconds a finished query's shuffle files stay on the executors before they are removed;
    /// 0 keeps them (to measure the shuffle volume of a night).
    #[arg(long, default_value_t = 300)]
    pub keep_shuffle_seconds: u64,
}

/// How an executor listens, where it finds its scheduler, and what it may use.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// The scheduler, as HOST:PORT.
    #[arg(long, env = "GROWTH_SCHEDULER", default_value = "localhost:50050")]
    pub scheduler: String,
    /// The address to listen on: this machine's address on the cluster's private network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Allow --bind 0.0.0.0 (every interface): Ballista has no authentication or TLS.
    #[arg(long)]
    pub insecure_bind_all: bool,
    /// The Arrow Flight port other executors and the client fetch results from; the gRPC
    /// port the scheduler pushes tasks to is the next one.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// The host name the scheduler and other executors reach this executor at.
    #[arg(long)]
    pub external_host: Option<String>,
    /// Tasks run at once; 0 for every core.
    #[arg(long, default_value_t = 0)]
    pub concurrent_tasks: usize,
    /// The folder for shuffle files (default: a new temporary folder).
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Memory for the sorts, aggregations and joins of all tasks together, such as 4GiB;
    /// beyond it they spill to the work folder. Default: Ballista's share of the machine.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Seconds between heartbeats to the scheduler (keep it below the scheduler's
    /// --executor-timeout-seconds).
    #[arg(long, default_value_t = 60)]
    pub heartbeat_seconds: u64,
}

/// The runtime of a scheduler or an executor: decoding and planning a deep plan recurses once
/// per node, so threads get 32 MiB stacks (as Ballista's own binaries do), not 2 MiB.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .map_err(Error::io("starting the async runtime"))
}

fn cluster_error(what: &str) -> impl FnOnce(ballista_core::error::BallistaError) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(args: &SchedulerArgs) -> Result<()> {
    crate::engine::check_listen_address(&args.bind, args.insecure_bind_all)?;
    let address: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .map_err(|e| Error::Usage(format!("--bind {} --port {}: {e}", args.bind, args.port)))?;
    let mut config = SchedulerConfig::default()
        .with_hostname(args.external_host.clone())
        .with_port(args.port);
    config.bind_host = args.bind.clone();
    config.executor_timeout_seconds = args.executor_timeout_seconds;
    config.finished_job_data_clean_up_interval_seconds = args.keep_shuffle_seconds;
    // Look for silent executors often enough to notice one within the timeout.
    config.expire_dead_executor_interval_seconds = (args.executor_timeout_seconds / 3).clamp(1, 15);
    config.no_executors_grace_period_seconds = args.executor_timeout_seconds;
    // Planning a query lists and reads the footers of its files, so the scheduler opens the
    // queries' s3:// buckets from its environment too (once, for every job's session, as an
    // executor does for its tasks); and it decodes plans that call our own functions.
    let stores = Arc::new(EnvObjectStores::default());
    config.override_session_builder = Some(Arc::new(move |config| {
        let state = ballista_core::utils::default_session_builder(config)?;
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_object_store_registry(stores.clone())
            .build_arc()?;
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime)
            .build();
        for function in our_functions() {
            state.register_udf(function)?;
        }
        Ok(state)
    }));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_error("starting the scheduler's state"))?;
    tracing::info!(%address, "growth-scheduler listening");
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
        .map_err(cluster_error("running the scheduler"))
}

/// Runs an executor until the process is stopped or its scheduler tells it to stop.
pub async fn run_executor(args: &ExecutorArgs) -> Result<()> {
    crate::engine::check_listen_address(&args.bind, args.insecure_bind_all)?;
    let (host, port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| Error::Usage(format!("--scheduler {}: expected HOST:PORT", args.scheduler)))?;
    let memory_pool_size = args
        .memory_limit
        .as_deref()
        .map(crate::config::parse_size)
        .transpose()
        .map_err(|e| Error::Usage(format!("--memory-limit: {e}")))?
        .map(|bytes| bytes as u64);
    let config = ExecutorProcessConfig {
        bind_host: args.bind.clone(),
        external_host: args.external_host.clone(),
        port: args.port,
        grpc_port: args.port + 1,
        scheduler_host: host,
        scheduler_port: port,
        vcores: args.concurrent_tasks,
        work_dir: args.work_dir.clone(),
        executor_heartbeat_interval_seconds: args.heartbeat_seconds,
        memory_pool_size,
        print_thread_info: false,
        override_execution_engine: Some(Arc::new(OperatorMetricsOff(DefaultExecutionEngine::new()))),
        override_runtime_producer: Some(runtime_producer(args.work_dir.clone())),
        override_function_registry: Some(Arc::new(function_registry())),
        ..Default::default()
    };
    tracing::info!(
        scheduler = args.scheduler,
        port = args.port,
        "growth-executor starting"
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(cluster_error("running the executor"))
}

/// The functions our queries call besides DataFusion's own, which a scheduler and executor must
/// know to decode a plan (Ballista sends them by name).
fn our_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(key_hash()),
        Arc::new(crate::input::time_zones::market_time()),
    ]
}

/// Ballista's functions (DataFusion's built-ins) and [`our_functions`], for the executor's tasks.
fn function_registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for function in our_functions() {
        registry
            .scalar_functions
            .insert(function.name().to_string(), function);
    }
    registry
}

/// The runtime of an executor's tasks: Ballista's own (spills into the work folder, when one is
/// given), with the object stores of [`EnvObjectStores`], so tasks read and write `s3://` roots
/// with the executor's `AWS_*` settings.
fn runtime_producer(work_dir: Option<String>) -> ballista_core::RuntimeProducer {
    let stores = Arc::new(EnvObjectStores::default());
    Arc::new(move |_config| {
        let builder = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
        match &work_dir {
            Some(folder) => builder.with_temp_file_path(folder.as_str()),
            None => builder,
        }
        .build_arc()
    })
}

/// Ballista's own executor engine, except that a task reports no per-operator metrics.
///
/// Ballista 55's scheduler adds a task's operator metrics to its stage's, and refuses the
/// whole task status when the task reports a different number of operator metric sets than
/// the stage's first task did; the task then never counts as done and the query waits forever.
/// Tasks of one stage do report different numbers: the scheduler restricts each task's plan
/// to its partitions (a `UnionExec` child with none of them becomes an empty scan), and
/// operators with and without metrics trade places. `customer_features` without the optional
/// input tables hangs this way ("task metrics array size 26 does not equal with the stage
/// metrics array size 27"). The scheduler accepts a task with no metrics, so the tasks report
/// none: the price is the per-operator figures in the scheduler's job view. Everything the
/// scheduler plans with (shuffle partitions, runtime and column statistics, window state) is
/// still reported.
///
/// Without the engine override Ballista would pool its shuffle-fetch connections; the pool is
/// private to ballista-executor, so connections are made per fetch (Ballista's own behaviour
/// with `client_ttl = 0`).
struct OperatorMetricsOff(DefaultExecutionEngine);

impl ExecutionEngine for OperatorMetricsOff {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        work_dir: &str,
        config: &datafusion::prelude::SessionConfig,
    ) -> datafusion::error::Result<Arc<dyn QueryStageExecutor>> {
        let stage = self.0.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(StageWithoutOperatorMetrics(stage)))
    }
}

#[derive(Debug)]
struct StageWithoutOperatorMetrics(Arc<dyn QueryStageExecutor>);

impl std::fmt::Display for StageWithoutOperatorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for StageWithoutOperatorMetrics {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::error::Result<Vec<ShuffleWritePartition>> {
        self.0.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<datafusion::physical_plan::metrics::MetricsSet> {
        Vec::new()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.0.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> datafusion::error::Result<Vec<WindowStateReport>> {
        self.0.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.0.collect_column_stats()
    }
}
