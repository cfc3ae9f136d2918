# The demo behind bin/demo: a store in ./demo_data, 100 hosts x 10 metrics
# scraped every 10 s for 1,000 scrapes (1,000,000 points), half written as
# labeled batches and half as raw batches, then flushed, restarted and queried.

Code.require_file("../bench/support/workload.ex", __DIR__)
alias Tms.Workload

{:ok, _} = Application.ensure_all_started(:tms)
# Options come from config/config.exs and config/runtime.exs.
opts = Application.fetch_env!(:tms, :demo_store)
dir = Keyword.fetch!(opts, :data_dir)
File.rm_rf!(dir)

scrapes = 1_000
per_batch = 10
# The last 1,000 scrapes before the current hour (the store keeps 30 days).
hour = 3_600_000
start = div(System.os_time(:millisecond), hour) * hour - scrapes * 10_000
w = Workload.new(hosts: 100, metrics: 10, start: start)
n_series = length(w.series)
total = scrapes * n_series

ms = fn fun ->
  {us, result} = :timer.tc(fun)
  {us / 1000, result}
end

median = fn runs, fun ->
  times = for _ <- 1..runs, do: elem(:timer.tc(fun), 0)
  Enum.at(Enum.sort(times), div(runs, 2))
end

rate = fn points, millis -> "#{round(points / (millis / 1000) / 1000) / 1000} M points/s" end

IO.puts("Tms demo: #{w.hosts} hosts x #{w.metrics} metrics = #{n_series} series, #{scrapes} scrapes at 10 s")
IO.puts("data_dir: #{dir}\n")

{:ok, _} = Tms.start_link(opts)

# Generate everything first: the timings below measure the store, not the generator.
{labeled, raw_scrapes} = w |> Workload.scrapes(scrapes) |> Enum.split(div(scrapes, 2))

labeled_batches =
  labeled |> Enum.chunk_every(per_batch) |> Enum.map(fn s -> Enum.flat_map(s, &Workload.entries(w, &1)) end)

{t_labeled, :ok} = ms.(fn -> Enum.each(labeled_batches, &Tms.write_batch!(:demo, &1)) end)

labeled_points = length(labeled) * n_series

IO.puts(
  "write_batch (labeled, #{per_batch * n_series} entries per call): #{labeled_points} points in #{round(t_labeled)} ms = #{rate.(labeled_points, t_labeled)}"
)

ids = for {metric, labels} <- Workload.series(w), do: elem(Tms.resolve(:demo, metric, labels), 1)

raw_batches =
  raw_scrapes |> Enum.chunk_every(per_batch) |> Enum.map(fn s -> Enum.map_join(s, &Workload.raw(ids, &1)) end)

{t_raw, :ok} = ms.(fn -> Enum.each(raw_batches, fn b -> :ok = Tms.write_batch_raw(:demo, b) end) end)

raw_points = length(raw_scrapes) * n_series

IO.puts(
  "write_batch_raw (#{per_batch * n_series} entries per call):      #{raw_points} points in #{round(t_raw)} ms = #{rate.(raw_points, t_raw)}"
)

{t_flush, :ok} = ms.(fn -> Tms.flush(:demo) end)
info = Tms.info!(:demo)
IO.puts("flush (pco, #{info.chunks} chunks in #{info.segments} segments): #{round(t_flush)} ms")

IO.puts(
  "on disk: #{info.segment_bytes} bytes of segments for #{total} points = " <>
    "#{Float.round(info.segment_bytes / total, 3)} bytes/point (16 raw)"
)

:ok = Tms.stop(:demo)
{t_open, {:ok, _}} = ms.(fn -> Tms.start_link(opts) end)
reopened = Tms.info!(:demo)

IO.puts(
  "\nrestart: open in #{Float.round(t_open, 2)} ms (#{reopened.segments} segments, " <>
    "#{reopened.open_read_bytes} bytes of tables read, #{reopened.wal_replayed_points} WAL points replayed)"
)

read_back =
  for {metric, _} <- Enum.uniq_by(Workload.series(w), &elem(&1, 0)), reduce: 0 do
    acc ->
      {:ok, result} = Tms.query_range(:demo, metric, %{}, 0, w.start * 2)
      acc + Enum.sum(Enum.map(result, &length(&1.points)))
  end

IO.puts("read back: #{read_back} points (wrote #{total})\n")

from = w.start + hour
one = %{"hostname" => "host_7"}

queries = [
  {"1 series, 1 h raw (360 points)",
   fn -> Tms.query_range(:demo, "cpu_usage_percent", one, from, from + hour - 1) end},
  {"1 series, all 1,000 points", fn -> Tms.query_range(:demo, "cpu_usage_percent", one, 0, w.start * 2) end},
  {"100 series (one metric, every host), 1 h",
   fn -> Tms.query_range(:demo, "http_requests_total", %{}, from, from + hour - 1) end},
  {"series listing, region=eu-west-1",
   fn -> Tms.series(:demo, "load_average_1m", %{"region" => "eu-west-1"}) end}
]

IO.puts("query medians (200 runs each, cache warm after the first):")

for {name, fun} <- queries do
  {:ok, _} = fun.()
  IO.puts("  #{String.pad_trailing(name, 44)} #{median.(200, fun)} us")
end

:ok = Tms.stop(:demo)
IO.puts("\nstopped; the store is in #{dir}")
