//! Training checkpoints in the bucket: the trainer writes each epoch's checkpoint into the data
//! folder (`Store::checkpoints_dir`); with a bucket, that folder is copied to the same keys there
//! after every epoch, so a worker that takes over a dead one's training continues from its last
//! epoch. A data folder store needs none of it: its keys are those very files.

use std::io;
use std::path::Path;

use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::{Key, Store, store_error};

/// What marks a checkpoint folder complete; copied last, both ways.
const COMPLETE: &str = "state.json";

impl Store {
    /// Copies the checkpoint folder `dir/epoch-NNNN` (complete, as the trainer leaves it) into
    /// the bucket, its `state.json` last, then removes the job's older epochs there.
    pub async fn save_checkpoint(&self, job_id: i64, dir: &Path, epoch: usize) -> io::Result<()> {
        if !self.in_bucket {
            return Ok(());
        }
        let folder_name = epoch_folder(epoch);
        let folder = dir.join(&folder_name);
        let mut names: Vec<String> = std::fs::read_dir(&folder)?
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        // Everything else first: a folder without its state.json is an unfinished copy.
        names.sort_by_key(|name| name == COMPLETE);
        for name in &names {
            let key = Key::from(format!("{}/{folder_name}/{name}", prefix(job_id)));
            self.upload(&key, &folder.join(name)).await?;
        }
        for key in self.checkpoint_keys(job_id).await? {
            if !key.as_ref().contains(&format!("/{folder_name}/")) {
                self.objects.delete(&key).await.map_err(|e| store_error(&key, e))?;
            }
        }
        Ok(())
    }

    /// Brings the job's newest complete checkpoint from the bucket into `dir` when `dir` has no
    /// checkpoint as new (this process takes over a training another one started). Returns the
    /// epoch brought, if any.
    pub async fn restore_checkpoint(
        &self,
        job_id: i64,
        dir: &Path,
        local_epoch: Option<usize>,
    ) -> io::Result<Option<usize>> {
        if !self.in_bucket {
            return Ok(None);
        }
        let keys = self.checkpoint_keys(job_id).await?;
        let newest = keys
            .iter()
            .filter(|key| key.filename() == Some(COMPLETE))
            .filter_map(|key| {
                let folder = key.parts().rev().nth(1)?;
                folder.as_ref().strip_prefix("epoch-")?.parse::<usize>().ok()
            })
            .max();
        let Some(epoch) = newest.filter(|e| Some(*e) > local_epoch) else {
            return Ok(None);
        };
        let folder_name = epoch_folder(epoch);
        let folder = dir.join(&folder_name);
        if folder.exists() {
            tokio::fs::remove_dir_all(&folder).await?;
        }
        tokio::fs::create_dir_all(&folder).await?;
        let mut files: Vec<&Key> = keys
            .iter()
            .filter(|key| key.as_ref().contains(&format!("/{folder_name}/")))
            .collect();
        files.sort_by_key(|key| key.filename() == Some(COMPLETE));
        for key in files {
            let name = key.filename().unwrap_or_default();
            let mut body = self.get(key).await?.into_stream();
            let mut file = tokio::fs::File::create(folder.join(name)).await?;
            while let Some(chunk) = body.try_next().await.map_err(|e| store_error(key, e))? {
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
        }
        Ok(Some(epoch))
    }

    /// Removes the job's checkpoints: its folder, and its copy in the bucket.
    pub async fn remove_checkpoints(&self, job_id: i64) -> io::Result<()> {
        let dir = self.checkpoints_dir(job_id);
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir).await?;
        }
        if self.in_bucket {
            for key in self.checkpoint_keys(job_id).await? {
                self.objects.delete(&key).await.map_err(|e| store_error(&key, e))?;
            }
        }
        Ok(())
    }

    async fn checkpoint_keys(&self, job_id: i64) -> io::Result<Vec<Key>> {
        let prefix = prefix(job_id);
        self.objects
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| store_error(&prefix, e))
    }
}

/// The keys of a job's checkpoints: the data folder's own layout, `checkpoints/job-N/…`.
fn prefix(job_id: i64) -> Key {
    Key::from(format!("checkpoints/job-{job_id}"))
}

/// As the trainer names a checkpoint folder.
fn epoch_folder(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}
