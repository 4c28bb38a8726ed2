//! A real S3-compatible server for the tests: `s3s-fs` (the `s3s` project's file-system-backed
//! S3 service) on 127.0.0.1 and a free port, with signed requests required, its buckets plain
//! folders in a temp folder — so a test can look at what a studio stored without going through
//! the studio. Stops when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ACCESS_KEY: &str = "distillery-tests";
const SECRET_KEY: &str = "s3s-fs-secret-key";

/// A running S3 server.
pub struct S3Server {
    addr: SocketAddr,
    root: TempDir,
    accept: JoinHandle<()>,
}

impl S3Server {
    /// Starts a server with one empty bucket per name in `buckets`.
    pub async fn start(buckets: &[&str]) -> anyhow::Result<S3Server> {
        let root = tempfile::tempdir().context("cannot create the S3 server's folder")?;
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket))?;
        }
        let storage = s3s_fs::FileSystem::new(root.path()).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(storage);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                // As S3 services do: a response's head and body leave at once, not the body
                // after the client's delayed ACK of the head (40 ms a request).
                let _ = socket.set_nodelay(true);
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service.clone());
                tokio::spawn(connection);
            }
        });
        Ok(S3Server { addr, root, accept })
    }

    /// The environment a studio reads the endpoint and credentials from (object_store's
    /// `AmazonS3Builder::from_env`, the same variables the AWS tools read).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://{}", self.addr)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    /// Where the object `key` of `bucket` lies on disk (s3s-fs keeps `bucket/key` as a file).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// The folder holding every bucket.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
