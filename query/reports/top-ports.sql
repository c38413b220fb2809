-- top-ports: the services (protocol and responder port) that carried the most bytes
-- source: any
--
-- One row per protocol and responder port: flows, how many originators
-- and responders used it, IP bytes both ways. For ICMP, resp_port is the
-- reply type or code (docs/schema.md). The 20 largest.
SELECT proto, resp_port, sum(flows) AS flows,
       count(DISTINCT orig_addr) AS origins, count(DISTINCT resp_addr) AS responders,
       sum(orig_bytes) + sum(resp_bytes) AS bytes
  FROM {source}
 WHERE flows > 0 AND ts >= :since AND ts < :until
 GROUP BY proto, resp_port
 ORDER BY bytes DESC, flows DESC, proto, resp_port
 LIMIT 20;
