-- Projects and their ontology.

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    train_pct     INTEGER NOT NULL DEFAULT 80,
    val_pct       INTEGER NOT NULL DEFAULT 20,
    test_pct      INTEGER NOT NULL DEFAULT 0,
    split_seed    INTEGER NOT NULL DEFAULT 0,
    -- Class ids are never reused, so a deleted class's id can never resurface on old boxes.
    next_class_id INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE classes (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    id         INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL COLLATE NOCASE,
    color      TEXT    NOT NULL,
    prompt     TEXT,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, name)
);
