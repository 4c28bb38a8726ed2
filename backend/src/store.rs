//! The data folder's files: original image bytes stored once under their SHA-256 (so identical
//! uploads, even across projects, share one file) and JPEG thumbnails beside them.
//!
//! Uploads are streamed to a staging file while hashed, then renamed into place, so a large
//! upload never sits in memory and a half-written file never appears under a real name.

use std::io;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;

/// Handle on the data folder's file areas.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
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
    /// Opens (creating) the file areas inside `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Store> {
        let root = data_dir.to_owned();
        for area in ["originals", "thumbs", "models", "staging"] {
            std::fs::create_dir_all(root.join(area))?;
        }
        Ok(Store { root })
    }

    /// Where the original bytes with this hash live (the extension lets file servers and
    /// people browsing the folder know the type).
    pub fn original_path(&self, sha256: &str, extension: &str) -> PathBuf {
        self.root
            .join("originals")
            .join(sha256.get(..2).unwrap_or("00"))
            .join(format!("{sha256}.{extension}"))
    }

    /// Where the thumbnail of the image with this hash lives.
    pub fn thumb_path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("thumbs")
            .join(sha256.get(..2).unwrap_or("00"))
            .join(format!("{sha256}.jpg"))
    }

    /// Where the ONNX bytes with this hash live.
    pub fn model_path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("models")
            .join(sha256.get(..2).unwrap_or("00"))
            .join(format!("{sha256}.onnx"))
    }

    /// The folder a training job keeps its checkpoints in (created by the trainer), until it
    /// has published its student.
    pub fn checkpoints_dir(&self, job_id: i64) -> PathBuf {
        self.root.join("checkpoints").join(format!("job-{job_id}"))
    }

    /// Moves staged ONNX bytes into the store (kept as they are when already there).
    pub fn commit_model(&self, staged: Staged) -> io::Result<PathBuf> {
        let path = self.model_path(&staged.sha256);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !path.is_file() {
            staged.file.persist(&path).map_err(|e| e.error)?;
        }
        Ok(path)
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

    /// Moves staged bytes and their thumbnail into the store. Bytes already stored under the
    /// same hash are kept as they are.
    pub fn commit(&self, staged: Staged, extension: &str, thumbnail_jpeg: &[u8]) -> io::Result<()> {
        self.commit_staged(staged, extension, &self.stage_thumbnail(thumbnail_jpeg)?.0)
    }

    /// [`Store::commit`] for a thumbnail that is already staged.
    pub fn commit_with_thumbnail(&self, staged: Staged, extension: &str, thumbnail: StagedThumbnail) -> io::Result<()> {
        self.commit_staged(staged, extension, &thumbnail.0)
    }

    fn commit_staged(&self, staged: Staged, extension: &str, thumbnail: &Path) -> io::Result<()> {
        let original = self.original_path(&staged.sha256, extension);
        let thumb = self.thumb_path(&staged.sha256);
        for path in [&original, &thumb] {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        if !thumb.is_file() {
            std::fs::rename(thumbnail, &thumb)?;
        }
        if !original.is_file() {
            staged.file.persist(&original).map_err(|e| e.error)?;
        }
        Ok(())
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
