-- Which student browsers run is a choice, not always the newest: rolling back to an earlier
-- version is setting this. A new student (uploaded or trained here) sets it to itself.

ALTER TABLE projects ADD COLUMN active_student_id BIGINT  REFERENCES models (id) ON DELETE SET NULL;

UPDATE projects SET active_student_id =
    (SELECT MAX(id) FROM models WHERE models.project_id = projects.id AND models.role = 'student');
