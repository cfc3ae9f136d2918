# Rollup tiers on the devops workload: 100 hosts x 10 metrics (1,000
# series), 10 s scrapes, DAYS days (default 30) ending at yesterday's
# midnight, tiers of 5 min and 1 h. Measures:
#
#   * a 30-day range at a 1 h step, avg of 50 series (one line, and one per
#     series), with tiers and over raw points only (the same directory
#     opened without tiers), hot (caches warm) and uncached (the store
#     restarted before each query; the OS page cache stays warm);
#   * bytes of the tiers against the raw segments;
#   * building the tiers of one closed day (a store holding one compacted
#     day, reopened with tiers: compaction then only builds them).
#
# The workload's generator makes one day of points per series and repeats
# it for every day (counters carried on from day to day, gauges shifted a
# little), so that loading 259 M points takes a minute, not ten; pco sees
# one day per chunk, so the repetition does not flatter the compression.
#
#   MIX_ENV=bench mix run bench/rollups.exs        (DAYS=7 for a quicker run)

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/workload.ex", __DIR__)
alias Tms.Workload
{:ok, _} = Application.ensure_all_started(:tms)

days = String.to_integer(System.get_env("DAYS", "30"))
runs = String.to_integer(System.get_env("RUNS", "15"))
minute = 60_000
hour = 60 * minute
day = 24 * hour
tiers = [[resolution: 5 * minute], [resolution: hour]]
first_day = div(System.os_time(:millisecond), day) * day - days * day
# Just past midnight: with the jitter (±25 ms) every scrape stays in its day.
w = Workload.new(hosts: 100, metrics: 10, start: first_day + 30)
kinds = Enum.map(w.series, fn {kind, _, _, _} -> kind end)

{gen_us, base} = :timer.tc(fn -> w |> Workload.scrapes(8_640) |> Enum.to_list() end)
{last_ts, last_values} = List.last(base)
_ = last_ts
rise = Enum.zip_with(kinds, last_values, fn kind, v -> if kind == :counter, do: v, else: 0.0 end)
IO.puts("generated one day of #{length(w.series)} series in #{div(gen_us, 1000)} ms")

# Day d: the base day's scrapes moved d days on, counters carried on.
load_day = fn store, ids, d ->
  shift = d * day
  nudge = 0.01 * rem(d, 5)

  offsets =
    Enum.zip_with(kinds, rise, fn
      :counter, r -> d * r
      :gauge, _ -> nudge
    end)

  base
  |> Enum.chunk_every(10)
  |> Enum.each(fn scrapes ->
    batch =
      for {ts, values} <- scrapes, into: <<>> do
        Enum.zip_with([ids, ts, values, offsets], fn [id, t, v, o] ->
          <<id::little-64, t + shift::little-signed-64, v + o::little-float-64>>
        end)
        |> IO.iodata_to_binary()
      end

    :ok = Tms.write_batch_raw(store, batch)
  end)

  :ok = Tms.flush(store)
end

resolve = fn store -> for {m, l} <- Workload.series(w), do: elem(Tms.resolve(store, m, l), 1) end

dir = Path.join(System.tmp_dir!(), "tms_bench_rollups")
File.rm_rf!(dir)
opts = [name: :r, data_dir: dir, wal_sync: :never]
{:ok, _} = Tms.start_link(opts ++ [rollups: tiers])
ids = resolve.(:r)

{load_us, _} = :timer.tc(fn -> for d <- 0..(days - 1), do: load_day.(:r, ids, d) end)
{compact_us, {:ok, report}} = :timer.tc(fn -> Tms.compact(:r) end)
info = Tms.info!(:r)
points = days * 8_640 * length(ids)

IO.puts(
  "loaded #{points} points in #{div(load_us, 1000)} ms; compaction (merge + tiers) #{div(compact_us, 1000)} ms, " <>
    "#{report.tiers.built} tier files built"
)

tier_bytes = Enum.sum(Enum.map(info.rollups, & &1.bytes))

for t <- info.rollups do
  IO.puts(
    "tier #{div(t.resolution, minute)} min: #{t.files} files, #{t.intervals} intervals, #{t.bytes} bytes " <>
      "(#{Float.round(t.bytes / t.intervals, 2)} bytes an interval)"
  )
end

IO.puts(
  "raw segments: #{info.segment_bytes} bytes (#{Float.round(info.segment_bytes / points, 3)} bytes a point); " <>
    "tiers: #{tier_bytes} bytes = #{Float.round(100 * tier_bytes / info.segment_bytes, 2)}% of raw"
)

:ok = Tms.stop(:r)

# Building the tiers of one closed day alone.
one_dir = Path.join(System.tmp_dir!(), "tms_bench_rollups_day")
File.rm_rf!(one_dir)
{:ok, _} = Tms.start_link(name: :d, data_dir: one_dir, wal_sync: :never)
load_day.(:d, resolve.(:d), days - 1)
{:ok, _} = Tms.compact(:d)
:ok = Tms.stop(:d)

builds =
  for _ <- 1..3 do
    File.rm_rf!(Path.join(one_dir, "rollups"))
    {:ok, _} = Tms.start_link(name: :d, data_dir: one_dir, wal_sync: :never, rollups: tiers)
    {us, {:ok, %{tiers: %{built: 2}}}} = :timer.tc(fn -> Tms.compact(:d) end)
    :ok = Tms.stop(:d)
    us
  end

IO.puts(
  "building the tiers of one closed day of 1,000 series: #{Enum.map_join(builds, ", ", &"#{div(&1, 1000)} ms")}"
)

# Queries.
from = first_day
to = first_day + days * day - 1
fifty = [{"arch", :eq, "x64"}]

queries = %{
  "avg of 50 series, one line" => fn ->
    {:ok, [%{points: [_ | _]}]} =
      Tms.query_range(:r, "cpu_usage_percent", fifty, from, to, step: hour, agg: :avg, group_by: [])
  end,
  "avg of 50 series, per series" => fn ->
    {:ok, r} = Tms.query_range(:r, "cpu_usage_percent", fifty, from, to, step: hour, agg: :avg)
    50 = length(r)
  end
}

uncached = fn extra, query ->
  samples =
    for _ <- 1..runs do
      {:ok, _} = Tms.start_link(opts ++ extra)
      {us, _} = :timer.tc(query)
      :ok = Tms.stop(:r)
      us
    end

  sorted = Enum.sort(samples)
  Enum.at(sorted, div(length(sorted), 2))
end

results =
  for {label, extra} <- [{"tiers", [rollups: tiers]}, {"raw only", []}] do
    {:ok, _} = Tms.start_link(opts ++ extra)

    hot =
      Tms.Bench.run(queries, warmup: 1, time: 3, title: "rollups #{days} d, 1 h step, #{label}, hot")
      |> Map.new(&{&1.name, &1.median_us})

    :ok = Tms.stop(:r)
    cold = Map.new(queries, fn {name, q} -> {name, uncached.(extra, q)} end)
    {label, hot, cold}
  end

IO.puts(
  "\n| query (#{days} days, 1 h step) | tiers hot | tiers uncached | raw hot | raw uncached | raw / tiers (hot, uncached) |"
)

IO.puts("|---|---|---|---|---|---|")
[{_, th, tc}, {_, rh, rc}] = results
ms = fn us -> :erlang.float_to_binary(us / 1000, decimals: 2) end

for name <- Enum.sort(Map.keys(queries)) do
  IO.puts(
    "| #{name} | #{ms.(th[name])} ms | #{ms.(tc[name])} ms | #{ms.(rh[name])} ms | #{ms.(rc[name])} ms | " <>
      "#{Float.round(rh[name] / th[name], 1)}x, #{Float.round(rc[name] / tc[name], 1)}x |"
  )
end

File.rm_rf!(dir)
File.rm_rf!(one_dir)
