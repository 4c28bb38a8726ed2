-- Teacher labeling: a job's own settings, and which images each teacher version has labeled
-- (an image with no detection is labeled too), so a resumed job continues where it stopped.
ALTER TABLE jobs ADD COLUMN params TEXT;

CREATE TABLE teacher_runs (
    model_id   INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id   INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    boxes      INTEGER NOT NULL,
    unmapped   INTEGER NOT NULL,
    labeled_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (model_id, image_id)
);
