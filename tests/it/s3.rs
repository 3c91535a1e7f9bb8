//! Input and output on S3: the real `transform` binary against a real S3-compatible server
//! (moto, started on loopback), publishing exactly the bytes a local run publishes.

use crate::support::wait_for_port;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;

use futures::TryStreamExt;
use growth_jobs::sample::{self, SampleOptions};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub(crate) const BUCKET: &str = "growth";
const RUN_DATE: &str = "2026-06-30";

/// A moto S3 server on a free loopback port, stopped when dropped.
pub(crate) struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with moto's own settings in its environment (such as `S3_UPLOAD_PART_MIN_SIZE`).
    pub(crate) fn start_with(settings: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(settings.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (tests/requirements.txt) runs the S3 server");
        wait_for_port(port, "moto's S3 server");
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub(crate) fn store(&self) -> AmazonS3 {
        let mut builder = AmazonS3Builder::new().with_bucket_name(BUCKET);
        for (key, value) in self.env() {
            builder = builder.with_config(key.to_lowercase().parse().unwrap(), value);
        }
        builder.build().unwrap()
    }

    /// Creates the bucket with a plain unsigned PUT, which moto accepts.
    pub(crate) fn create_bucket(&self) {
        use std::io::{Read, Write};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating the bucket: {response}"
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn transform(input: &str, output: &str, env: &[(&'static str, String)]) {
    let status = transform_on(input, output, RUN_DATE, env);
    assert!(status.success(), "transform {input} -> {output}: {status}");
}

fn transform_on(
    input: &str,
    output: &str,
    date: &str,
    env: &[(&'static str, String)],
) -> std::process::ExitStatus {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    Command::new(env!("CARGO_BIN_EXE_transform"))
        .args(["--input", input, "--output", output, "--date", date])
        .arg("--models")
        .arg(models)
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
}

pub(crate) async fn upload(store: &Arc<AmazonS3>, local: &Path, prefix: &str) {
    for entry in std::fs::read_dir(local).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            Box::pin(upload(store, &path, &name)).await;
        } else {
            let bytes = std::fs::read(&path).unwrap();
            store
                .put(&StorePath::from(name), PutPayload::from(bytes))
                .await
                .unwrap();
        }
    }
}

/// Copies every object below `prefix` into `local`, at the same relative paths.
#[cfg(feature = "ballista")]
pub(crate) async fn download(store: &Arc<AmazonS3>, prefix: &str, local: &Path) {
    let listed: Vec<StorePath> = store
        .list(Some(&StorePath::from(prefix)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    for key in listed {
        let relative = key.as_ref().strip_prefix(prefix).unwrap().trim_start_matches('/');
        let path = local.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Creates the bucket, generates a sample of 1,500 customers in `dir/in` and uploads it to
/// `in/`: the store, the local input and the options it was generated with.
async fn sample_on_s3(server: &S3Server, dir: &Path) -> (Arc<AmazonS3>, std::path::PathBuf, SampleOptions) {
    server.create_bucket();
    let store = Arc::new(server.store());
    let input = dir.join("in");
    let mut options = SampleOptions::embedded(input.clone());
    options.customers = 1_500;
    sample::generate(&options).unwrap();
    upload(&store, &input, "in").await;
    (store, input, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_s3_to_s3_publishes_what_a_local_run_publishes() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, input, _) = sample_on_s3(&server, dir.path()).await;

    let local_out = dir.path().join("out");
    transform(input.to_str().unwrap(), local_out.to_str().unwrap(), &[]);
    transform(
        &format!("s3://{BUCKET}/in"),
        &format!("s3://{BUCKET}/out"),
        &server.env(),
    );

    let listed: Vec<String> = store
        .list(Some(&StorePath::from("out")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(
        !listed.iter().any(|p| p.contains("_growth_drafts")),
        "drafts removed: {listed:?}"
    );
    assert!(
        listed.contains(&format!("out/_manifests/run_date={RUN_DATE}/manifest.json")),
        "{listed:?}"
    );
    let tables: Vec<&String> = listed.iter().filter(|p| p.ends_with(".parquet")).collect();
    assert!(tables.len() >= 2, "{listed:?}");
    for key in tables {
        let remote = store
            .get(&StorePath::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let local = std::fs::read(local_out.join(key.trim_start_matches("out/"))).unwrap();
        assert!(
            remote.as_ref() == local.as_slice(),
            "{key}: S3 and local outputs differ"
        );
    }
}

/// Every object below `prefix`: key -> (bytes, ETag).
async fn objects(
    store: &Arc<AmazonS3>,
    prefix: &str,
) -> std::collections::BTreeMap<String, (Vec<u8>, String)> {
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&StorePath::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        out.insert(
            meta.location.to_string(),
            (bytes.to_vec(), meta.e_tag.unwrap_or_default()),
        );
    }
    out
}

/// The date a table's pointer on S3 names.
fn pointer_date(
    objects: &std::collections::BTreeMap<String, (Vec<u8>, String)>,
    table: &str,
) -> Option<String> {
    let (bytes, _) = objects.get(&format!("out/{table}/_latest.json"))?;
    let json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    Some(json["run_date"].as_str().unwrap().to_string())
}

/// Publishing to S3 uploads each file to its published key, never copies it: with 64 KiB
/// parts (moto told to take parts that small), a file over a part is a multipart upload (its
/// ETag ends in the part count) and its bytes are a local run's. A rerun on new input aborted
/// before its second file leaves every table's pointer on the day before, whose objects are
/// unchanged; the next clean run moves them to the date and leaves no draft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_publishing_uploads_whole_objects_and_a_failed_rerun_leaves_the_pointers_on_the_day_before() {
    const DAY_BEFORE: &str = "2026-06-29";
    let server = S3Server::start_with(&[("S3_UPLOAD_PART_MIN_SIZE", "1024")]);
    let dir = tempfile::tempdir().unwrap();
    let (store, input, mut options) = sample_on_s3(&server, dir.path()).await;
    let mut env = server.env();
    env.push(("GROWTH_S3_PART_SIZE", "64KiB".into()));
    let (s3_in, s3_out) = (format!("s3://{BUCKET}/in"), format!("s3://{BUCKET}/out"));
    for date in [DAY_BEFORE, RUN_DATE] {
        assert!(transform_on(&s3_in, &s3_out, date, &env).success());
    }
    let local_out = dir.path().join("local");
    transform(input.to_str().unwrap(), local_out.to_str().unwrap(), &[]);

    let before = objects(&store, "out").await;
    let mut multipart = 0;
    for (key, (bytes, etag)) in &before {
        if key.ends_with(".parquet") && key.contains(RUN_DATE) {
            let local = std::fs::read(local_out.join(key.trim_start_matches("out/"))).unwrap();
            assert!(bytes == &local, "{key}: S3 and local outputs differ");
            if bytes.len() > 64 << 10 {
                assert!(
                    etag.trim_matches('"').contains('-'),
                    "{key} ({} bytes): ETag {etag}",
                    bytes.len()
                );
                multipart += 1;
            }
        }
    }
    assert!(multipart > 0, "no published file was over one part");
    assert_eq!(pointer_date(&before, "daily_sales").as_deref(), Some(RUN_DATE));

    // New input; a rerun aborted just before its second file.
    options.seed = 9;
    std::fs::remove_dir_all(&input).unwrap();
    sample::generate(&options).unwrap();
    upload(&store, &input, "in").await;
    let mut failing = env.clone();
    failing.push(("GROWTH_FAULT_ABORT_BEFORE_PUBLISH", "2".into()));
    assert!(!transform_on(&s3_in, &s3_out, RUN_DATE, &failing).success());
    let after = objects(&store, "out").await;
    let tables: Vec<&str> = before
        .keys()
        .filter_map(|k| k.strip_prefix("out/")?.strip_suffix("/_latest.json"))
        .filter(|t| !t.is_empty())
        .collect();
    assert!(tables.len() >= 10, "{tables:?}");
    for table in &tables {
        assert_eq!(
            pointer_date(&after, table).as_deref(),
            Some(DAY_BEFORE),
            "{table}"
        );
    }
    for (key, value) in &before {
        if key.contains(&format!("run_date={DAY_BEFORE}")) && !key.starts_with("out/_manifests") {
            assert!(after.get(key) == Some(value), "{key} changed");
        }
    }
    assert!(transform_on(&s3_in, &s3_out, RUN_DATE, &env).success());
    let done = objects(&store, "out").await;
    assert_eq!(pointer_date(&done, "daily_sales").as_deref(), Some(RUN_DATE));
    assert!(!done.keys().any(|k| k.contains("_growth_drafts")), "drafts left");
}
