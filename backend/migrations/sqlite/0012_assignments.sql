-- Images an owner assigned to one person: "Next" hands them to that person first, and to nobody
-- else, until they are labeled.
ALTER TABLE images ADD COLUMN assignee_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX images_by_assignee ON images (project_id, assignee_id);
