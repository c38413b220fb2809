-- failed-connections: connection attempts that failed: unanswered (S0), refused (REJ), reset before any data
-- source: raw, else any
--
-- While raw partitions hold the window: TCP flows whose state says so
-- (docs/cookbook.md, recipe 3), one row per originator, responder and
-- state (failure = conn_state): scans and probes from outside included.
-- Older windows: from the rollups, TCP connections of local sockets that
-- never reached ESTABLISHED (failure = 'not established'); attempts that
-- never became a local socket (an inbound scan) are not there.
SELECT orig_addr, resp_addr, conn_state AS failure, count(*) AS attempts,
       count(DISTINCT resp_port) AS ports, ts_iso(min(ts), 's') AS first
  FROM flows
 WHERE proto = 'tcp' AND ts >= :since AND ts < :until
   AND (conn_state IN ('S0', 'REJ', 'RSTOS0', 'RSTRH', 'SH', 'SHR')
        OR (conn_state IN ('RSTO', 'RSTR') AND history NOT GLOB '*[Dd]*'))
 GROUP BY orig_addr, resp_addr, conn_state
 ORDER BY attempts DESC, min(ts), orig_addr, resp_addr;
-- else:
SELECT orig_addr, resp_addr, 'not established' AS failure,
       sum(failed_connections) AS attempts,
       count(DISTINCT CASE WHEN failed_connections > 0 THEN resp_port END) AS ports,
       ts_iso(min(CASE WHEN failed_connections > 0 THEN ts END), 's') AS first
  FROM {source}
 WHERE connections > 0 AND ts >= :since AND ts < :until
 GROUP BY orig_addr, resp_addr
HAVING sum(failed_connections) > 0
 ORDER BY attempts DESC, min(CASE WHEN failed_connections > 0 THEN ts END), orig_addr, resp_addr;
