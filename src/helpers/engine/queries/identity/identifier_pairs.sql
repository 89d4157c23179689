-- Record pairs that share a usable strong identifier, with the evidence needed to accept or reject them.
-- {identifiers}: record_index, identifier_type, identifier_value (suspicious values already removed)
-- {records}: record_index, name_key, birth_date, gender, national_id_hash
WITH pairs AS (
    SELECT a.record_index AS left_index,
           b.record_index AS right_index,
           list(DISTINCT a.identifier_type ORDER BY a.identifier_type) AS shared_types
    FROM {identifiers} a
    JOIN {identifiers} b
      ON a.identifier_type = b.identifier_type
     AND a.identifier_value = b.identifier_value
     AND a.record_index < b.record_index
    GROUP BY ALL
)
SELECT p.left_index,
       p.right_index,
       array_to_string(p.shared_types, '+') AS shared_types,
       CASE
           WHEN l.name_key IS NULL OR r.name_key IS NULL THEN NULL
           -- "wang" (from 王先生) or "david" fit "wang wei" / "david smith": a partial name agrees.
           WHEN list_has_all(string_split(l.name_key, ' '), string_split(r.name_key, ' '))
             OR list_has_all(string_split(r.name_key, ' '), string_split(l.name_key, ' ')) THEN
               CASE WHEN l.name_key = r.name_key THEN 1.0 ELSE 0.95 END
           -- A two-part key is one word too, in either order: "Maria" read as pinyin "ma ria" is in
           -- "anderson maria" (helpers.identity.keys.name_similarity).
           WHEN len(string_split(l.name_key, ' ')) = 2 AND (
                    list_contains(string_split(r.name_key, ' '), replace(l.name_key, ' ', ''))
                 OR list_contains(string_split(r.name_key, ' '),
                                  split_part(l.name_key, ' ', 2) || split_part(l.name_key, ' ', 1)))
             OR len(string_split(r.name_key, ' ')) = 2 AND (
                    list_contains(string_split(l.name_key, ' '), replace(r.name_key, ' ', ''))
                 OR list_contains(string_split(l.name_key, ' '),
                                  split_part(r.name_key, ' ', 2) || split_part(r.name_key, ' ', 1))) THEN 0.95
           -- One shared part (usually the family name) with a typo elsewhere: "zhou xue" / "zhou jing".
           -- The names differ here; equal names are passed as NULL because Spark runs its Jaro-Winkler
           -- (a Python UDF) on every pair whatever the CASE (most pairs have one name).
           WHEN len(list_intersect(string_split(l.name_key, ' '), string_split(r.name_key, ' '))) > 0 THEN
               greatest(0.8, jaro_winkler_similarity(CASE WHEN l.name_key <> r.name_key THEN l.name_key END, r.name_key))
           ELSE jaro_winkler_similarity(CASE WHEN l.name_key <> r.name_key THEN l.name_key END, r.name_key)
       END AS name_similarity,
       l.national_id_hash IS NOT NULL AND r.national_id_hash IS NOT NULL
           AND l.national_id_hash <> r.national_id_hash AS national_id_conflict,
       -- Typos, not conflicts (as helpers.identity.merge.birth_dates_compatible): one digit of
       -- YYYYMMDD differs (Levenshtein at most 1 between strings of one length: built in on Spark,
       -- where hamming is a lambda), day and month swapped or the day's or month's digits transposed
       -- in the same year, within two days of the same day of the year a year apart, or a day apart.
       l.birth_date IS NOT NULL AND r.birth_date IS NOT NULL AND NOT (
           levenshtein(strftime(l.birth_date, '%Y%m%d'), strftime(r.birth_date, '%Y%m%d')) <= 1
         OR year(l.birth_date) = year(r.birth_date) AND (
                month(l.birth_date) = day(r.birth_date) AND day(l.birth_date) = month(r.birth_date)
             OR month(l.birth_date) = month(r.birth_date)
                AND strftime(l.birth_date, '%d') = reverse(strftime(r.birth_date, '%d'))
             OR day(l.birth_date) = day(r.birth_date)
                AND strftime(l.birth_date, '%m') = reverse(strftime(r.birth_date, '%m')))
         OR abs(dayofyear(l.birth_date) - dayofyear(r.birth_date)) <= 2
             AND abs(year(l.birth_date) - year(r.birth_date)) <= 1
         OR abs(date_diff('day', l.birth_date, r.birth_date)) <= 1
       ) AS birth_date_conflict,
       l.gender IS NOT NULL AND r.gender IS NOT NULL AND l.gender <> r.gender AS gender_conflict
FROM pairs p
JOIN {records} l ON l.record_index = p.left_index
JOIN {records} r ON r.record_index = p.right_index
