# Query latency on a day of the small devops workload (100 hosts x 10
# metrics at 10 s: 8,640 points per series, 8.64 M points), flushed into
# one chunk per series. Each query is measured twice: with the decoded-chunk
# cache off (cache_bytes: 0, every query reads and decodes its chunks from
# the file, which the OS has in its page cache) and with it on and hot.
#
#   MIX_ENV=bench mix run bench/query.exs

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/workload.ex", __DIR__)
alias Tms.Workload
{:ok, _} = Application.ensure_all_started(:tms)

dir = Path.join(System.tmp_dir!(), "tms_bench_query")
File.rm_rf!(dir)
day = 86_400_000
# Just past midnight: with the scrape jitter (±25 ms) every point stays
# in one day partition.
start = div(System.os_time(:millisecond), day) * day - 2 * day + 30
w = Workload.new(hosts: 100, metrics: 10, start: start)

{:ok, _} = Tms.start_link(name: :q, data_dir: dir)
{us, _} = :timer.tc(fn -> Workload.load_raw(w, :q, 8_640) end)
:ok = Tms.flush(:q)
# What the cold timer does once the day is closed: one chunk per series.
{:ok, _} = Tms.compact(:q)
info = Tms.info!(:q)

IO.puts(
  "generated and loaded #{info.series} series in #{div(us, 1000)} ms; compacted: #{info.chunks} chunks, #{info.segment_bytes} bytes"
)

:ok = Tms.stop(:q)

hour = 3_600_000
from = start + 12 * hour
one = %{"hostname" => "host_42"}
fifty = [{"hostname", :regex, "host_[1-4]?[0-9]"}]

queries = %{
  "1 series, 1 h raw (360 points)" => fn ->
    {:ok, [%{points: [_ | _]}]} = Tms.query_range(:q, "cpu_usage_percent", one, from, from + hour - 1)
  end,
  "1 series, 24 h raw (8,640 points), :list" => fn ->
    {:ok, [%{points: [_ | _]}]} = Tms.query_range(:q, "cpu_usage_percent", one, start, start + day - 1)
  end,
  "1 series, 24 h raw (8,640 points), :binary" => fn ->
    {:ok, [%{points: p}]} =
      Tms.query_range(:q, "cpu_usage_percent", one, start, start + day - 1, format: :binary)

    138_240 = byte_size(p)
  end,
  "50 series avg, step 60 s, 1 h" => fn ->
    {:ok, [_ | _] = r} =
      Tms.query_range(:q, "cpu_usage_percent", fifty, from, from + hour - 1, step: 60_000, agg: :avg)

    50 = length(r)
  end,
  "50 series avg, step 60 s, 1 h, group_by []" => fn ->
    {:ok, [%{points: p}]} =
      Tms.query_range(:q, "cpu_usage_percent", fifty, from, from + hour - 1,
        step: 60_000,
        agg: :avg,
        group_by: []
      )

    60 = length(p)
  end
}

{:ok, _} = Tms.start_link(name: :q, data_dir: dir, cache_bytes: 0)
Tms.Bench.run(queries, warmup: 1, time: 3, title: "query uncached")
:ok = Tms.stop(:q)

{:ok, _} = Tms.start_link(name: :q, data_dir: dir)
Tms.Bench.run(queries, warmup: 1, time: 3, title: "query cache hot")
info = Tms.info!(:q)
IO.puts("cache: #{info.cache_hits} hits, #{info.cache_misses} misses, #{info.cache_bytes} bytes")
:ok = Tms.stop(:q)
