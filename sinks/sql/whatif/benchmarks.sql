-- What-if: the benchmarks in force (the latest version of each area, industry, region, period).
SELECT area, industry_code, region, period_start, period_end, value, unit, source, version
FROM benchmarks FINAL
ORDER BY area, industry_code, region, period_start
