-- long-lived-connections: TCP connections that closed in the window after lasting 5 minutes or more
-- source: raw
--
-- From raw connections only (rollups keep no durations): the window must
-- lie within raw retention. Longest first, at most 100.
SELECT ts_iso(ts, 's') AS opened, ts_iso(ts_end, 's') AS closed,
       (ts_end - ts) / dur('1s') AS seconds, direction, orig_addr, resp_addr, resp_port,
       pid, comm, bytes_sent, bytes_received
  FROM connections
 WHERE ts_end >= :since AND ts_end < :until AND ts_end - ts >= dur('5m')
 ORDER BY seconds DESC, ts, orig_addr
 LIMIT 100;
