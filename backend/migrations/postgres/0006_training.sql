-- Training jobs: one row per finished epoch (what the training page charts), and on a student
-- the training that made it and its validation when it was published.

CREATE TABLE training_epochs (
    job_id BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch  BIGINT  NOT NULL,
    -- JSON api::TrainingEpoch.
    report TEXT    NOT NULL,
    PRIMARY KEY (job_id, epoch)
);

ALTER TABLE models ADD COLUMN train_job_id BIGINT  REFERENCES jobs (id) ON DELETE SET NULL;
ALTER TABLE models ADD COLUMN map50 DOUBLE PRECISION;
ALTER TABLE models ADD COLUMN map50_95 DOUBLE PRECISION;
