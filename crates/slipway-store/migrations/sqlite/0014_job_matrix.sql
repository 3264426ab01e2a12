-- A job that is one combination of a matrix (`matrix:` in the pipeline file)
-- remembers which job of the file it belongs to and with which values, as
-- JSON: {"job": "test", "title": "test [PYTHON=3.11, DB=sqlite]",
-- "values": {"PYTHON": "3.11", "DB": "sqlite"}}. NULL for every other job,
-- and for jobs stored before matrices existed.
ALTER TABLE jobs ADD COLUMN matrix TEXT;
