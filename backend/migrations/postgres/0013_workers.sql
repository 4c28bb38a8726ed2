-- Jobs run by several processes (servers and `distillery worker`s): who holds a job and until
-- when (a lease its holder renews; an expired one is taken over), how many times it started, and
-- whether it needs a GPU. A teacher job's images are items that processes claim a few at a time.

ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN device TEXT NOT NULL DEFAULT 'any';

CREATE TABLE job_items (
    job_id      BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    image_id    BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    done        BIGINT NOT NULL DEFAULT 0,
    -- Why the image could not be done, when it could not.
    error       TEXT,
    worker      TEXT,
    lease_until TEXT,
    PRIMARY KEY (job_id, image_id)
);

-- The processes that run jobs, and until when each is known to be alive.
CREATE TABLE workers (
    name        TEXT NOT NULL PRIMARY KEY,
    device      TEXT NOT NULL,
    -- 1 for `distillery worker`, 0 for a server running jobs itself.
    dedicated   BIGINT NOT NULL,
    started_at  TEXT NOT NULL,
    alive_until TEXT NOT NULL
);

ALTER TABLE teacher_runs ADD COLUMN labeled_by TEXT;
