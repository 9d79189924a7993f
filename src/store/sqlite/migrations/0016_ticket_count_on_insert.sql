-- A new ticket is counted by the code that inserts it (`insert_ticket`), not by a trigger: a trigger
-- makes every ticket insert keep a statement journal (a copy of each page it changes, should the
-- statement have to roll back alone), a fifth of the writer's time opening tickets in a storm.
-- Updates and deletes, rarer, keep their triggers.
DROP TRIGGER IF EXISTS ticket_counts_insert;
