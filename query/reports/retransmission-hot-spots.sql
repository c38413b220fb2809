-- retransmission-hot-spots: remote ends whose TCP connections needed the most retransmissions
-- source: any
--
-- Per remote end (the responder of outbound connections, the originator
-- of inbound ones): established connections and their retransmitted
-- segments. Connects that never got an answer are left out (their
-- retransmits are SYN retries, not a lossy path); over rollups, only where
-- every connection of a bucket's row failed.
SELECT CASE direction WHEN 'in' THEN orig_addr ELSE resp_addr END AS remote,
       sum(connections) AS connections, sum(retransmits) AS retransmits,
       round(1.0 * sum(retransmits) / sum(connections), 2) AS per_connection
  FROM {source}
 WHERE connections > failed_connections AND ts >= :since AND ts < :until
 GROUP BY remote
HAVING sum(retransmits) > 0
 ORDER BY retransmits DESC, remote;
