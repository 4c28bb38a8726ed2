-- Teacher labeling: a job's own settings, and which images each teacher version has labeled
-- (an image with no detection is labeled too), so a resumed job continues where it stopped.
ALTER TABLE jobs ADD COLUMN params TEXT;

CREATE TABLE teacher_runs (
    model_id   BIGINT  NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id   BIGINT  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    boxes      BIGINT  NOT NULL,
    unmapped   BIGINT  NOT NULL,
    labeled_at TEXT    NOT NULL DEFAULT (utc_now()),
    PRIMARY KEY (model_id, image_id)
);
