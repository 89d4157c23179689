-- One row of per-column measures for one checked table (all input rows):
-- missing (blank or null), distinct filled values, invalid (filled but not parsed or not an
-- allowed category) and, over accepted rows, the smallest and largest value.
SELECT {aggregates}
FROM {rows}
