-- How many rows of one checked table carry each quarantine reason.
SELECT reason, count(*) AS rows
FROM (SELECT unnest(problems) AS reason FROM {checked})
GROUP BY reason
ORDER BY rows DESC, reason
