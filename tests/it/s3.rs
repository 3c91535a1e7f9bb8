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
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
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
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let status = Command::new(env!("CARGO_BIN_EXE_transform"))
        .args(["--input", input, "--output", output, "--date", RUN_DATE])
        .arg("--models")
        .arg(models)
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "transform {input} -> {output}: {status}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_s3_to_s3_publishes_what_a_local_run_publishes() {
    let server = S3Server::start();
    server.create_bucket();
    let store = Arc::new(server.store());

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let mut options = SampleOptions::embedded(input.clone());
    options.customers = 1_500;
    sample::generate(&options).unwrap();
    upload(&store, &input, "in").await;

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
        !listed.iter().any(|p| p.contains("_temporary")),
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
