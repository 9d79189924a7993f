-- Browser sessions: a cookie names the generation it was issued in; signing out bumps it.
CREATE TABLE session_generations (
    member     TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;
