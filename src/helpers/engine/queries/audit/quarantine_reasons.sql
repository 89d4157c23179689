-- How many rows of one checked table carry each quarantine reason.
SELECT reason, count(*) AS rows
FROM (SELECT unnest(string_split(problems, '; ')) AS reason FROM {rows} WHERE problems <> '')
GROUP BY reason
ORDER BY rows DESC, reason
