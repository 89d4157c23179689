-- Per typed column of one checked table: filled values and how many of them did not parse.
SELECT {counts}
FROM {checked}
