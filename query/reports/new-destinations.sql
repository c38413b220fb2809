-- new-destinations: responder addresses seen in the window and not in the 7 days before it
-- source: any
-- lookback: 7d
--
-- "Seen": the responder of a flow (whoever answered the first packet), so
-- this host's own address is new only when nobody reached it that week.
-- first_hour is the hour of its first flow in the window (an hour, so
-- that rollups of either width give the same answer).
SELECT resp_addr, ts_iso(min(ts) - min(ts) % dur('1h'), 's') AS first_hour,
       sum(flows) AS flows, count(DISTINCT resp_port) AS ports,
       sum(orig_bytes) AS orig_bytes, sum(resp_bytes) AS resp_bytes
  FROM {source}
 WHERE flows > 0 AND ts >= :since AND ts < :until AND resp_addr IS NOT NULL
   AND resp_addr NOT IN (SELECT resp_addr FROM {source}
                          WHERE flows > 0 AND ts < :since AND resp_addr IS NOT NULL)
 GROUP BY resp_addr
 ORDER BY min(ts) - min(ts) % dur('1h'), resp_addr;
