-- The latest presence report per member and source (web UI, API, chat platforms).
CREATE TABLE presence (
    member TEXT NOT NULL,
    source TEXT NOT NULL,
    state  TEXT NOT NULL,
    since  INTEGER NOT NULL,
    PRIMARY KEY (member, source)
) WITHOUT ROWID;
