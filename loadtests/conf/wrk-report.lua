-- wrk -s wrk-report.lua: print one machine-readable line at the end of a run.
-- Latencies are in microseconds. wrk counts a status >= 400 as errors.status.
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d seconds=%.3f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d " ..
    "bad_status=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d bytes=%d\n",
    summary.requests, seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes))
end
