-- top-talkers: the address pairs that moved the most bytes, both ways together
-- source: any
--
-- One row per originator and responder: the flows between them and the IP
-- bytes each way (orig_bytes: originator to responder, resp_bytes: back).
-- Rollups keep no interface, so traffic that crosses two (a container's
-- veth, then eth0) counts on each. The 20 largest.
SELECT orig_addr, resp_addr, sum(flows) AS flows,
       sum(orig_bytes) AS orig_bytes, sum(resp_bytes) AS resp_bytes,
       sum(orig_bytes) + sum(resp_bytes) AS bytes
  FROM {source}
 WHERE flows > 0 AND ts >= :since AND ts < :until
 GROUP BY orig_addr, resp_addr
 ORDER BY bytes DESC, orig_addr, resp_addr
 LIMIT 20;
