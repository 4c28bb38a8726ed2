//! Where the studio's files live: original image bytes stored once under their SHA-256 (so
//! identical uploads, even across projects, share one object), JPEG thumbnails beside them, and
//! model files — in the data folder, or in an S3-compatible bucket when `--store s3://…` is given.
//! Both are `object_store` stores behind one interface, with the same keys
//! (`originals/ab/abcd….jpg`), so a data folder's layout is what a bucket holds.
//!
//! Uploads are streamed to a staging file in the data folder while hashed (a large upload never
//! sits in memory, and it is decoded from there before anything is kept), then copied into the
//! store under their hash: a half-written object never appears under a real name.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
pub use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{GetResult, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;

mod checkpoints;

/// Objects bigger than this go up in parts (S3 multipart); smaller ones in one request.
const SINGLE_PUT_BYTES: usize = 8 * 1024 * 1024;

/// Handle on the studio's stored files and the data folder's working areas.
#[derive(Debug, Clone)]
pub struct Store {
    /// The data folder: staging and training checkpoints stay here whatever the store is.
    root: PathBuf,
    objects: Arc<dyn ObjectStore>,
    /// Whether the objects are in a bucket, not in the data folder itself.
    in_bucket: bool,
}

/// A fully received upload, not yet in the store. Deleted when dropped unless committed.
///
/// Only the path is kept, not an open file: an import stages thousands of images before it
/// commits any, and must not hold a descriptor for each.
#[derive(Debug)]
pub struct Staged {
    file: TempPath,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub byte_size: u64,
}

impl Staged {
    /// Where the staged bytes are, for decoding before they are committed.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// A thumbnail written to the staging area, waiting for its image to be committed (so an
/// import does not keep thousands of them in memory).
#[derive(Debug)]
pub struct StagedThumbnail(TempPath);

/// Why an upload could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// More bytes than allowed arrived.
    #[error("the file is larger than the {limit_mb} MiB upload limit")]
    TooLarge { limit_mb: u64 },
    /// The client's stream broke off or was malformed.
    #[error("the upload broke off: {0}")]
    Body(String),
    /// A dataset entry held more bytes than its header declared.
    #[error("it holds more bytes than its header declares ({declared})")]
    LongerThanDeclared { declared: u64 },
    /// The bytes could not be read from their source (a damaged archive entry).
    #[error("it cannot be read: {0}")]
    Unreadable(String),
    /// The disk refused.
    #[error("cannot write the upload: {0}")]
    Io(#[from] io::Error),
}

/// A source that could not be opened, for readers that fail before any byte is read.
impl From<String> for StageError {
    fn from(reason: String) -> Self {
        Self::Unreadable(reason)
    }
}

impl Store {
    /// Opens (creating) the data folder's working areas, and the store: the data folder itself,
    /// or the bucket `location` names (`s3://bucket/prefix`; endpoint, region and credentials
    /// from the usual `AWS_*` variables). A bucket that cannot be reached is refused here.
    pub async fn open(data_dir: &Path, location: Option<&str>) -> anyhow::Result<Store> {
        let Some(url) = location else {
            return Store::data_folder(data_dir);
        };
        let root = working_areas(data_dir)?;
        let bucket = open_bucket(url)?;
        // A store that cannot be reached or read fails now, not on the first upload.
        match bucket.head(&Key::from("distillery-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(Store {
                root,
                objects: bucket,
                in_bucket: true,
            }),
            Err(error) => anyhow::bail!("cannot reach the store {url}: {error}"),
        }
    }

    /// Opens (creating) a data folder that keeps the files itself.
    pub fn data_folder(data_dir: &Path) -> anyhow::Result<Store> {
        let root = working_areas(data_dir)?;
        let folder = LocalFileSystem::new_with_prefix(&root)
            .with_context(|| format!("cannot prepare the data folder {}", root.display()))?;
        Ok(Store {
            root,
            objects: Arc::new(folder),
            in_bucket: false,
        })
    }

    /// The key of the original bytes with this hash (the extension tells people browsing the
    /// store the type).
    pub fn original_key(sha256: &str, extension: &str) -> Key {
        key("originals", sha256, extension)
    }

    /// The key of the thumbnail of the image with this hash.
    pub fn thumb_key(sha256: &str) -> Key {
        key("thumbs", sha256, "jpg")
    }

    /// The key of the ONNX bytes with this hash.
    pub fn model_key(sha256: &str) -> Key {
        key("models", sha256, "onnx")
    }

    /// The folder a training job keeps its checkpoints in (created by the trainer), until it
    /// has published its student. Always in the data folder; with a bucket, each checkpoint is
    /// copied there too (`save_checkpoint`), so another worker can continue the training.
    pub fn checkpoints_dir(&self, job_id: i64) -> PathBuf {
        self.root.join("checkpoints").join(format!("job-{job_id}"))
    }

    /// One stored object, streamed (serving it).
    pub async fn get(&self, key: &Key) -> io::Result<GetResult> {
        self.objects.get(key).await.map_err(|e| store_error(key, e))
    }

    /// One stored object, whole (an image to decode, a model to load).
    pub async fn read(&self, key: &Key) -> io::Result<Bytes> {
        self.get(key).await?.bytes().await.map_err(|e| store_error(key, e))
    }

    /// Stored objects as blocking readers, streamed, in the order of `keys` (writing an export
    /// zip on a blocking thread): the requests for the next `ahead` objects are already under
    /// way while one is read, so a bucket's per-request latency is paid once per `ahead`
    /// objects, not once per object. Call it from `spawn_blocking`.
    pub fn blocking_readers(
        &self,
        keys: Vec<Key>,
        ahead: usize,
    ) -> impl Iterator<Item = io::Result<impl io::Read + use<>>> {
        let runtime = tokio::runtime::Handle::current();
        let objects = Arc::clone(&self.objects);
        let mut keys = keys.into_iter();
        let mut requested = std::collections::VecDeque::new();
        std::iter::from_fn(move || {
            while requested.len() < ahead.max(1) {
                let Some(key) = keys.next() else { break };
                let (objects, asked) = (Arc::clone(&objects), key.clone());
                requested.push_back((key, runtime.spawn(async move { objects.get(&asked).await })));
            }
            let (key, request) = requested.pop_front()?;
            let found = match runtime.block_on(request) {
                Ok(Ok(found)) => found,
                Ok(Err(error)) => return Some(Err(store_error(&key, error))),
                Err(crashed) => return Some(Err(io::Error::other(crashed))),
            };
            let stream = found.into_stream().map_err(move |e| store_error(&key, e));
            Some(Ok(tokio_util::io::SyncIoBridge::new_with_handle(
                tokio_util::io::StreamReader::new(stream),
                runtime.clone(),
            )))
        })
    }

    /// Copies staged ONNX bytes into the store (kept as they are when already there).
    pub async fn commit_model(&self, staged: Staged) -> io::Result<()> {
        self.put_file(&Self::model_key(&staged.sha256), staged.path()).await
    }

    /// Streams `body` into a staging file, hashing as it goes; refuses more than `max_bytes`.
    pub async fn stage<S, E>(&self, mut body: S, max_bytes: u64) -> Result<Staged, StageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let temp = NamedTempFile::new_in(self.root.join("staging"))?;
        let mut file = tokio::fs::File::from_std(temp.reopen()?);
        let mut hasher = Sha256::new();
        let mut byte_size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StageError::Body(e.to_string()))?;
            byte_size += chunk.len() as u64;
            if byte_size > max_bytes {
                return Err(StageError::TooLarge {
                    limit_mb: max_bytes / (1024 * 1024),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_data().await?;
        let sha256 = hex(&hasher.finalize());
        drop(file);
        Ok(Staged {
            file: temp.into_temp_path(),
            sha256,
            byte_size,
        })
    }

    /// Stages bytes from a blocking reader (imports), hashing them on the way. Reads at most
    /// `declared_bytes` (what the dataset's own header says the entry holds): an entry that
    /// unpacks to more is refused, however it was built.
    pub fn stage_reader(&self, reader: &mut dyn io::Read, declared_bytes: u64) -> Result<Staged, StageError> {
        let temp = NamedTempFile::new_in(self.root.join("staging"))?;
        let mut hasher = Sha256::new();
        let mut file = temp.reopen()?;
        let byte_size = io::copy(
            &mut io::Read::take(reader, declared_bytes.saturating_add(1)),
            &mut TeeWriter {
                hasher: &mut hasher,
                file: &mut file,
            },
        )
        .map_err(|error| match error.kind() {
            // The source's fault (a damaged or lying archive entry), not the disk's.
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => StageError::Unreadable(error.to_string()),
            _ => StageError::Io(error),
        })?;
        if byte_size > declared_bytes {
            return Err(StageError::LongerThanDeclared {
                declared: declared_bytes,
            });
        }
        file.sync_data()?;
        drop(file);
        Ok(Staged {
            sha256: hex(&hasher.finalize()),
            file: temp.into_temp_path(),
            byte_size,
        })
    }

    /// Writes a thumbnail to the staging area until its image is committed.
    pub fn stage_thumbnail(&self, thumbnail_jpeg: &[u8]) -> io::Result<StagedThumbnail> {
        let temp = NamedTempFile::new_in(self.root.join("staging"))?;
        std::fs::write(temp.path(), thumbnail_jpeg)?;
        Ok(StagedThumbnail(temp.into_temp_path()))
    }

    /// Copies staged bytes and their thumbnail into the store. Objects already stored under the
    /// same hash are kept as they are.
    pub async fn commit(&self, staged: Staged, extension: &str, thumbnail_jpeg: Vec<u8>) -> io::Result<()> {
        let thumb = Self::thumb_key(&staged.sha256);
        if !self.exists(&thumb).await? {
            let written = self.objects.put(&thumb, thumbnail_jpeg.into()).await;
            written.map_err(|e| store_error(&thumb, e))?;
        }
        self.put_file(&Self::original_key(&staged.sha256, extension), staged.path())
            .await
    }

    /// [`Store::commit`] for a thumbnail that is already staged.
    pub async fn commit_with_thumbnail(
        &self,
        staged: Staged,
        extension: &str,
        thumbnail: StagedThumbnail,
    ) -> io::Result<()> {
        let thumbnail_jpeg = tokio::fs::read(&thumbnail.0).await?;
        self.commit(staged, extension, thumbnail_jpeg).await
    }

    async fn exists(&self, key: &Key) -> io::Result<bool> {
        match self.objects.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(store_error(key, error)),
        }
    }

    /// Streams a file into the store under `key`, unless an object is already there (keys are
    /// hashes: it holds the same bytes).
    async fn put_file(&self, key: &Key, file: &Path) -> io::Result<()> {
        if self.exists(key).await? {
            return Ok(());
        }
        self.upload(key, file).await
    }

    /// Streams a file into the store under `key`, replacing what is there.
    async fn upload(&self, key: &Key, file: &Path) -> io::Result<()> {
        let mut source = tokio::fs::File::open(file).await?;
        let mut upload = BufWriter::with_capacity(Arc::clone(&self.objects), key.clone(), SINGLE_PUT_BYTES);
        if let Err(error) = tokio::io::copy(&mut source, &mut upload).await {
            let _ = upload.abort().await;
            return Err(error);
        }
        upload.shutdown().await
    }
}

/// Creates the data folder's staging and checkpoint areas.
fn working_areas(data_dir: &Path) -> anyhow::Result<PathBuf> {
    for area in ["staging", "checkpoints"] {
        std::fs::create_dir_all(data_dir.join(area))
            .with_context(|| format!("cannot prepare the data folder {}", data_dir.display()))?;
    }
    Ok(data_dir.to_owned())
}

/// `area/ab/abcd….extension`: the first two hex digits as a folder, so no folder of a data
/// folder holds more than a 256th of the files.
fn key(area: &str, sha256: &str, extension: &str) -> Key {
    Key::from(format!(
        "{area}/{}/{sha256}.{extension}",
        sha256.get(..2).unwrap_or("00")
    ))
}

/// The bucket `s3://bucket/prefix` names, every key under the prefix.
fn open_bucket(url: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let Some(rest) = url.strip_prefix("s3://") else {
        anyhow::bail!("the store must be an s3://bucket/prefix URL (or left out for the data folder), not {url:?}");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        anyhow::bail!("the store URL {url:?} names no bucket");
    }
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("cannot use the store {url}"))?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(PrefixStore::new(s3, prefix))
    })
}

/// A store error as IO: a missing object is `NotFound`, the rest says which key failed.
fn store_error(key: &Key, error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("{key} is missing from the store"))
        }
        other => io::Error::other(format!("the store failed on {key}: {other}")),
    }
}

/// Writes to the staging file and the hash at once.
struct TeeWriter<'a> {
    hasher: &'a mut Sha256,
    file: &'a mut std::fs::File,
}

impl io::Write for TeeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = io::Write::write(self.file, buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(self.file)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
