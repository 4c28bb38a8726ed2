-- Images "Next" just handed to someone, kept theirs for a short while before their editor takes
-- the image's lease: in the database, so two people pressing Next at the same moment get
-- different images whichever replica each is on.

CREATE TABLE handed_out (
    image_id   BIGINT  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    project_id BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      TEXT    NOT NULL,
    PRIMARY KEY (project_id, image_id)
);
CREATE INDEX handed_out_by_time ON handed_out (project_id, until);
