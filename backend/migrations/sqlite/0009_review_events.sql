-- Review decisions (submitted, approved, rejected with a comment, reopened) in the project's
-- sequence beside box events: what the live channel replays to a client that reconnects, and
-- who decided what when.

CREATE TABLE review_events (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    image_id   INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    comment    TEXT,
    author     TEXT,
    at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (project_id, seq)
);
