-- bytes-per-process: flows, TCP connections and IP bytes per local process (command name)
-- source: any
--
-- A flow counts for the process owning its local socket; comm is empty
-- (NULL) for flows with none (forwarded or NATed traffic, probes nobody
-- answered, raw sockets). orig_bytes went from the flow's originator,
-- resp_bytes back: for a client, what it sent and received.
SELECT comm, sum(flows) AS flows, sum(connections) AS connections,
       sum(orig_bytes) AS orig_bytes, sum(resp_bytes) AS resp_bytes,
       sum(orig_bytes) + sum(resp_bytes) AS bytes
  FROM {source}
 WHERE ts >= :since AND ts < :until
 GROUP BY comm
 ORDER BY bytes DESC, connections DESC, comm;
