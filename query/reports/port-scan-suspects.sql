-- port-scan-suspects: originators touching 10 or more ports or hosts, mostly failing
-- source: raw, else any
--
-- While raw partitions hold the window: TCP flows per originator, flagged
-- when it reached 10 or more ports or hosts and 80% of its flows failed
-- (S0, REJ, reset before data: docs/cookbook.md, recipe 8). Older windows,
-- from the rollups: 10 or more ports or hosts alone (the state of a flow
-- is not rolled up); failed then counts its local sockets' connections
-- that never reached ESTABLISHED. first and last: the earliest and latest
-- flow start (a bucket start over rollups).
SELECT orig_addr AS source, count(DISTINCT resp_addr) AS hosts,
       count(DISTINCT resp_port) AS ports, count(*) AS flows,
       sum(conn_state IN ('S0', 'REJ', 'RSTOS0', 'RSTRH', 'SH', 'SHR')
           OR (conn_state IN ('RSTO', 'RSTR') AND history NOT GLOB '*[Dd]*')) AS failed,
       ts_iso(min(ts), 's') AS first, ts_iso(max(ts), 's') AS last
  FROM flows
 WHERE proto = 'tcp' AND ts >= :since AND ts < :until
 GROUP BY orig_addr
HAVING (ports >= 10 OR hosts >= 10) AND failed >= 0.8 * flows
 ORDER BY ports DESC, hosts DESC, source;
-- else:
SELECT orig_addr AS source, count(DISTINCT resp_addr) AS hosts,
       count(DISTINCT resp_port) AS ports, sum(flows) AS flows,
       sum(failed_connections) AS failed,
       ts_iso(min(ts), 's') AS first, ts_iso(max(ts), 's') AS last
  FROM {source}
 WHERE proto = 'tcp' AND ts >= :since AND ts < :until
 GROUP BY orig_addr
HAVING ports >= 10 OR hosts >= 10
 ORDER BY ports DESC, hosts DESC, source;
