# Tms and VictoriaMetrics side by side on the same generated workload, in
# one run: ingest (VictoriaMetrics' Prometheus text import against Tms'
# labeled write_batch; its JSON-lines import against write_batch_raw), bytes
# per point on disk (VictoriaMetrics after force_flush and force_merge,
# index included; Tms compacted, registry included), a single-series raw
# range query and a 50-series aggregate. Installs Debian's victoria-metrics
# when missing, runs it on 127.0.0.1 with a temporary data directory, and
# stops it by its PID.
#
#   MIX_ENV=bench mix run bench/vs_victoriametrics.exs    (SCRAPES=2160 for a quarter day)

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/workload.ex", __DIR__)
Code.require_file("support/victoria.ex", __DIR__)
alias Tms.Bench.Victoria
alias Tms.Workload
{:ok, _} = Application.ensure_all_started(:tms)
{:ok, _} = Application.ensure_all_started(:inets)

scrapes = String.to_integer(System.get_env("SCRAPES", "8640"))
day = 86_400_000
start = div(System.os_time(:millisecond), day) * day - 2 * day + 30
w = Workload.new(hosts: 100, metrics: 10, start: start)
series = Workload.series(w)
total = scrapes * length(series)
batch_scrapes = 10

# ---------------------------------------------------------------- data, pre-encoded for both

{gen_us, scrape_batches} =
  :timer.tc(fn -> w |> Workload.scrapes(scrapes) |> Enum.chunk_every(batch_scrapes) end)

prom_line_prefix =
  Enum.map(series, fn {metric, labels} ->
    labels = labels |> Enum.sort() |> Enum.map_join(",", fn {k, v} -> ~s(#{k}="#{v}") end)
    "#{metric}{#{labels}} "
  end)
  |> List.to_tuple()

json_series =
  Enum.map(series, fn {metric, labels} ->
    pairs =
      [{"__name__", metric} | Enum.sort(labels)] |> Enum.map_join(",", fn {k, v} -> ~s("#{k}":"#{v}") end)

    ~s({"metric":{#{pairs}},)
  end)
  |> List.to_tuple()

float = fn v -> :erlang.float_to_binary(v, [:short]) end

prom_bodies =
  for batch <- scrape_batches do
    for {ts, values} <- batch, {t, v, i} <- Enum.zip([ts, values, 0..(length(ts) - 1)]), into: "" do
      elem(prom_line_prefix, i) <> float.(v) <> " " <> Integer.to_string(t) <> "\n"
    end
  end

json_bodies =
  for batch <- scrape_batches do
    per_series =
      batch |> Enum.map(fn {ts, vs} -> Enum.zip(ts, vs) end) |> Enum.zip() |> Enum.map(&Tuple.to_list/1)

    per_series
    |> Enum.with_index()
    |> Enum.map_join("", fn {points, i} ->
      elem(json_series, i) <>
        ~s("values":[#{Enum.map_join(points, ",", &float.(elem(&1, 1)))}],"timestamps":[#{Enum.map_join(points, ",", &Integer.to_string(elem(&1, 0)))}]}\n)
    end)
  end

labeled_batches = for batch <- scrape_batches, do: Enum.flat_map(batch, &Workload.entries(w, &1))

IO.puts(
  "#{total} points (#{scrapes} scrapes of #{length(series)} series) generated and encoded in #{div(gen_us, 1_000_000)}+ s"
)

# ---------------------------------------------------------------- helpers

beam_cpu_ms = fn -> elem(:erlang.statistics(:runtime), 0) end

du = fn dir ->
  {out, 0} = System.cmd("du", ["-sb", dir])
  out |> String.split() |> hd() |> String.to_integer()
end

median = fn runs, fun ->
  fun.()
  times = for _ <- 1..runs, do: elem(:timer.tc(fun), 0)
  Enum.at(Enum.sort(times), div(runs, 2))
end

# ---------------------------------------------------------------- VictoriaMetrics

vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_vm"), 18_428)
get = &Victoria.get(vm, &1)
post = &Victoria.post(vm, &1, &2)

vm_ingest = fn path, bodies ->
  cpu0 = Victoria.cpu_ms(vm)
  client0 = beam_cpu_ms.()
  {us, _} = :timer.tc(fn -> Enum.each(bodies, fn b -> 204 = post.(path, b) end) end)
  {us, Victoria.cpu_ms(vm) - cpu0, beam_cpu_ms.() - client0}
end

# The text import first, into a clean store; then a second, clean store for
# JSON lines would need a restart: instead JSON lines go to a different
# metric prefix of the same server so both are measured on an empty series set.
{vm_text_us, vm_text_cpu, vm_text_client} = vm_ingest.("/api/v1/import/prometheus", prom_bodies)
json_renamed = Enum.map(json_bodies, &String.replace(&1, ~s("__name__":"), ~s("__name__":"j_)))
{vm_json_us, vm_json_cpu, vm_json_client} = vm_ingest.("/api/v1/import", json_renamed)

Victoria.force_merge(vm, du)
vm_bytes = du.(vm.dir) / 2

# The hour in the middle of the data.
from = start + div(scrapes * 10_000, 2) - 1_800_000
to = from + 3_600_000 - 1
q = fn s -> URI.encode_www_form(s) end

vm_one = fn ->
  {200, _} =
    get.(
      "/api/v1/export?match%5B%5D=#{q.(~s(cpu_usage_percent{hostname="host_42"}))}&start=#{div(from, 1000)}&end=#{div(to, 1000)}"
    )
end

vm_fifty = fn ->
  query = q.(~S|avg_over_time(cpu_usage_percent{hostname=~"host_[1-4]?[0-9]"}[60s])|)

  {200, _} =
    get.("/api/v1/query_range?query=#{query}&start=#{div(from, 1000) + 60}&end=#{div(to, 1000)}&step=60")
end

vm_one_us = median.(200, vm_one)
vm_fifty_us = median.(100, vm_fifty)
Victoria.stop(vm)

# ---------------------------------------------------------------- Tms

tms_dir = Path.join(System.tmp_dir!(), "tms_bench_vs")
File.rm_rf!(tms_dir)
{:ok, _} = Tms.start_link(name: :vs, data_dir: tms_dir, max_buffered_points: 100_000_000)
client0 = beam_cpu_ms.()
{tms_labeled_us, _} = :timer.tc(fn -> Enum.each(labeled_batches, &(:ok = Tms.write_batch(:vs, &1))) end)
tms_labeled_cpu = beam_cpu_ms.() - client0

# The same entries with a labels map of their own each (as after a copy
# between processes, which does not keep terms shared), into a clean store.
unshared = Enum.map(labeled_batches, &:erlang.binary_to_term(:erlang.term_to_binary(&1)))
File.rm_rf!(tms_dir <> "_unshared")

{:ok, _} =
  Tms.start_link(name: :vs_unshared, data_dir: tms_dir <> "_unshared", max_buffered_points: 100_000_000)

{tms_unshared_us, _} = :timer.tc(fn -> Enum.each(unshared, &(:ok = Tms.write_batch(:vs_unshared, &1))) end)
:ok = Tms.stop(:vs_unshared)

# write_batch_raw into a second store (a clean series set), ids resolved first.
File.rm_rf!(tms_dir <> "_raw")
{:ok, _} = Tms.start_link(name: :vs_raw, data_dir: tms_dir <> "_raw", max_buffered_points: 100_000_000)
ids = for {metric, labels} <- series, do: elem(Tms.resolve(:vs_raw, metric, labels), 1)
raw_batches = for batch <- scrape_batches, do: Enum.map_join(batch, &Workload.raw(ids, &1))
client0 = beam_cpu_ms.()
{tms_raw_us, _} = :timer.tc(fn -> Enum.each(raw_batches, &(:ok = Tms.write_batch_raw(:vs_raw, &1))) end)
tms_raw_cpu = beam_cpu_ms.() - client0
:ok = Tms.stop(:vs_raw)

:ok = Tms.flush(:vs)
{:ok, _} = Tms.compact(:vs)
tms_bytes = du.(tms_dir)

tms_one = fn ->
  {:ok, [_]} = Tms.query_range(:vs, "cpu_usage_percent", %{"hostname" => "host_42"}, from, to)
end

tms_fifty = fn ->
  {:ok, [_ | _]} =
    Tms.query_range(:vs, "cpu_usage_percent", [{"hostname", :regex, "host_[1-4]?[0-9]"}], from, to,
      step: 60_000,
      agg: :avg
    )
end

tms_one_us = median.(200, tms_one)
tms_fifty_us = median.(100, tms_fifty)
:ok = Tms.stop(:vs)

# ---------------------------------------------------------------- report

rate = fn us -> total / (us / 1_000_000) end
m = fn x -> "#{Float.round(x / 1_000_000, 2)} M" end

rows = [
  [
    "labeled ingest: Prometheus text vs write_batch, a labels map per series (points/s)",
    m.(rate.(vm_text_us)),
    m.(rate.(tms_labeled_us)),
    "#{Float.round(rate.(tms_labeled_us) / rate.(vm_text_us), 2)}x"
  ],
  [
    "labeled ingest: Prometheus text vs write_batch, a labels map per entry (points/s)",
    m.(rate.(vm_text_us)),
    m.(rate.(tms_unshared_us)),
    "#{Float.round(rate.(tms_unshared_us) / rate.(vm_text_us), 2)}x"
  ],
  [
    "raw ingest: JSON lines vs write_batch_raw (points/s)",
    m.(rate.(vm_json_us)),
    m.(rate.(tms_raw_us)),
    "#{Float.round(rate.(tms_raw_us) / rate.(vm_json_us), 2)}x"
  ],
  [
    "bytes per point on disk",
    "#{Float.round(vm_bytes / total, 3)}",
    "#{Float.round(tms_bytes / total, 3)}",
    "#{Float.round(vm_bytes / tms_bytes, 2)}x smaller"
  ],
  [
    "1 series, 1 h raw (median)",
    "#{vm_one_us} µs",
    "#{tms_one_us} µs",
    "#{Float.round(vm_one_us / tms_one_us, 1)}x faster"
  ],
  [
    "50 series avg, step 60 s, 1 h (median)",
    "#{vm_fifty_us} µs",
    "#{tms_fifty_us} µs",
    "#{Float.round(vm_fifty_us / tms_fifty_us, 1)}x faster"
  ]
]

IO.puts("\n== Tms vs VictoriaMetrics (#{total} points, #{System.schedulers_online()} cores)")

widths =
  for col <- Enum.zip([["", "VictoriaMetrics", "Tms", "ratio"] | rows]),
      do: col |> Tuple.to_list() |> Enum.map(&String.length/1) |> Enum.max()

for row <- [["", "VictoriaMetrics", "Tms", "ratio"] | rows],
    do:
      row |> Enum.zip(widths) |> Enum.map_join("  ", fn {c, w} -> String.pad_trailing(c, w) end) |> IO.puts()

IO.puts("""

CPU during ingest (ms): VictoriaMetrics text #{vm_text_cpu} server + #{vm_text_client} client, JSON #{vm_json_cpu} server + #{vm_json_client} client;
Tms labeled #{tms_labeled_cpu}, raw #{tms_raw_cpu} (the BEAM's scheduler time; Tms' dirty-scheduler work is not all counted there).
VictoriaMetrics bytes are half its data directory after force_merge (it holds the text and the JSON copy of the data).
""")
