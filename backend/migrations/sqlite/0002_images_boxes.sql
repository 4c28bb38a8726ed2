-- Images, their boxes, and the ordered log of every box operation.

CREATE TABLE images (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- Original bytes live in the data folder under their SHA-256 (shared between projects).
    sha256         TEXT    NOT NULL,
    file_name      TEXT    NOT NULL,
    extension      TEXT    NOT NULL,
    byte_size      INTEGER NOT NULL,
    -- Upright size: after EXIF orientation.
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'new',
    negative       INTEGER NOT NULL DEFAULT 0,
    fixed_split    TEXT,
    review_comment TEXT,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (project_id, sha256)
);
CREATE INDEX images_by_status ON images (project_id, status, id);

CREATE TABLE boxes (
    id            TEXT    PRIMARY KEY,
    image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    class_id      INTEGER NOT NULL,
    x0            REAL    NOT NULL,
    y0            REAL    NOT NULL,
    x1            REAL    NOT NULL,
    y1            REAL    NOT NULL,
    source        TEXT    NOT NULL DEFAULT 'human',
    model_version TEXT,
    confidence    REAL,
    author        TEXT,
    revision      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX boxes_by_image ON boxes (image_id);
CREATE INDEX boxes_by_class ON boxes (class_id, image_id);

-- The project-wide order of edits (what live clients resume from) and the audit log.
ALTER TABLE projects ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE box_events (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    image_id   INTEGER NOT NULL,
    box_id     TEXT    NOT NULL,
    op         TEXT    NOT NULL,
    before     TEXT,
    after      TEXT,
    author     TEXT,
    at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (project_id, seq)
);
