-- What each process (runtime node) has queued for an insurer's line, by kind, so that progress
-- read on any process shows the queue of the whole cluster, not only its own. A process writes
-- its row a moment after its queue changes (at most once a second); rows of nodes that are no
-- longer alive (actor_live_nodes()) are not counted.
CREATE TABLE insurer_line_queues (
  insurer_id  text    NOT NULL,
  node        text    NOT NULL,
  interactive integer NOT NULL,
  listing     integer NOT NULL,
  bulk        integer NOT NULL,
  PRIMARY KEY (insurer_id, node)
);
