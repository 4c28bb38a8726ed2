-- Failed sign-ins, per account and per client address, which the login throttle counts: in the
-- database, so every replica counts the same attempts and a restart forgets none.

CREATE TABLE login_failures (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'account:<lower-case username>' or 'address:<ip>'.
    key TEXT NOT NULL,
    at  TEXT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at);
CREATE INDEX login_failures_by_time ON login_failures (at);
