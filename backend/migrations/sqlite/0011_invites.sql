-- Invite links: whoever opens one before it expires joins the project with its role (signing
-- in, or creating an account on the spot). Only the SHA-256 of the link's secret is kept.
CREATE TABLE invites (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    secret_sha256 BLOB    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'annotator', 'reviewer', 'owner')),
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at    TEXT    NOT NULL,
    joined        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invites_by_project ON invites (project_id, id);
