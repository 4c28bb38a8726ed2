-- Who has which image open, written by each `serve` replica for its own connections when several
-- share one PostgreSQL database, so the others show them and respect their image leases. Rows of
-- a replica that stopped renewing them (alive_until) are ignored. Unused with SQLite.

CREATE TABLE presence (
    -- The replica (its news sender id).
    process     TEXT    NOT NULL,
    connection  BIGINT  NOT NULL,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL,
    username    TEXT    NOT NULL,
    image_id    BIGINT ,
    editing     BIGINT  NOT NULL,
    may_edit    BIGINT  NOT NULL,
    alive_until TEXT    NOT NULL,
    PRIMARY KEY (process, connection)
);
CREATE INDEX presence_by_project ON presence (project_id);
