-- Registered detectors, what they predicted per image, and background jobs.

CREATE TABLE models (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role          TEXT    NOT NULL,
    -- The bytes live in the data folder under this hash: models/ab/<sha256>.onnx.
    sha256        TEXT    NOT NULL,
    file_name     TEXT    NOT NULL,
    byte_size     INTEGER NOT NULL,
    input_size    INTEGER NOT NULL,
    layout        TEXT    NOT NULL,
    -- JSON array of the model's class names.
    class_names   TEXT    NOT NULL,
    -- JSON array: for each model class, a project class id or null.
    class_map     TEXT    NOT NULL,
    embedding_len INTEGER,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX models_by_project ON models (project_id, role, id);

-- One model version's view of one image. Scores of other versions are never mixed in: every
-- query names the model.
CREATE TABLE predictions (
    model_id       INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id       INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    -- JSON array of api::PredictedBox.
    boxes          TEXT    NOT NULL,
    best_candidate REAL    NOT NULL,
    -- Little-endian f32s of the model's embedding output, when it has one.
    embedding      BLOB,
    scored_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (model_id, image_id)
);
CREATE INDEX predictions_by_image ON predictions (image_id);

CREATE TABLE image_scores (
    model_id    INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    strategy    TEXT    NOT NULL,
    aggregation TEXT    NOT NULL,
    score       REAL    NOT NULL,
    PRIMARY KEY (model_id, strategy, aggregation, image_id)
);
CREATE INDEX image_scores_ranked ON image_scores (model_id, strategy, aggregation, score DESC);
CREATE INDEX image_scores_by_image ON image_scores (image_id);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'queued',
    model_id         INTEGER REFERENCES models (id) ON DELETE SET NULL,
    done             INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL DEFAULT 0,
    message          TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at       TEXT,
    finished_at      TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_project ON jobs (project_id, id);
