# PromQL latency over HTTP, Tms against Prometheus 2.42 and VictoriaMetrics
# 1.79 (its cache off: -search.disableCache), same data, same client, same
# run: the real scrape in ../shared/data replicated to HOSTS hosts, ten
# dashboard queries over 1 h at a 15 s step, each run RUNS times after one
# warm-up run; the median per query and server, and the ratios. Also the
# growth of each server's peak RSS over the heaviest query's first run.
#
# Prometheus gets the data by remote_write (its receiver on: the 40 minutes
# fit its head block), VictoriaMetrics and Tms as Prometheus text; all three
# run while the data is loaded (bodies are built a host at a time: 20 hosts'
# bodies do not fit in memory at once), then each is measured while the
# others idle.
#
#   MIX_ENV=bench mix run bench/promql.exs          (HOSTS=2 for a quick run)

Code.require_file("support/victoria.ex", __DIR__)
Code.require_file("support/real_data.ex", __DIR__)
Code.require_file("support/http_client.ex", __DIR__)
Code.require_file("support/prometheus_peer.ex", __DIR__)
alias Tms.Bench.{HTTPClient, PrometheusPeer, RealData, Victoria}
{:ok, _} = Application.ensure_all_started(:tms)

hosts = String.to_integer(System.get_env("HOSTS", "20"))
runs = String.to_integer(System.get_env("RUNS", "15"))
{_series, scrapes} = data = RealData.load()
samples = RealData.samples(scrapes) * hosts
last_ms = scrapes |> List.last() |> Enum.map(fn {_, ts, _} -> ts end) |> Enum.max()
IO.puts("#{samples} samples, #{hosts} hosts; queries over the hour up to #{last_ms} ms")

queries = [
  {"rate per series", "rate(node_network_receive_bytes_total[1m])"},
  {"sum by mode of cpu rates", "sum by (mode) (rate(node_cpu_seconds_total[1m]))"},
  {"histogram quantile",
   "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))"},
  {"ratio of two rates",
   "sum by (host) (rate(node_disk_read_bytes_total[1m])) / sum by (host) (rate(node_disk_reads_completed_total[1m]))"},
  {"topk", "topk(5, rate(node_network_transmit_bytes_total[1m]))"},
  {"avg_over_time", "avg_over_time(node_load1[5m])"},
  {"count by", "count by (host) (node_cpu_seconds_total)"},
  {"__name__ regex", ~s|{__name__=~"node_memory_.*_bytes"}|},
  {"absent", "absent(node_no_such_metric)"},
  {"subquery", "max_over_time(rate(node_cpu_seconds_total[1m])[10m:1m])"}
]

path = fn query ->
  params = %{query: query, start: (last_ms - 3_600_000) / 1000, end: last_ms / 1000, step: 15}
  "/api/v1/query_range?" <> URI.encode_query(params)
end

status_bytes = fn pid, field ->
  [_, kb, "kB"] =
    File.read!("/proc/#{pid}/status")
    |> String.split("\n")
    |> Enum.find(&String.starts_with?(&1, field))
    |> String.split()

  String.to_integer(kb) * 1024
end

# Resets the process' peak RSS to its current RSS (Linux: clear_refs 5),
# so that the peak after a query is what the query added.
rss_before = fn pid ->
  File.write!("/proc/#{pid}/clear_refs", "5")
  status_bytes.(pid, "VmRSS:")
end

# Median microseconds per query over `runs` runs after a warm-up; the
# answer's size; the peak RSS growth over the heaviest query's warm-up.
measure = fn port, os_pid ->
  socket = HTTPClient.connect(port)

  for {name, query} <- queries, into: %{} do
    before = rss_before.(os_pid)
    {200, body} = HTTPClient.get(socket, path.(query))
    growth = status_bytes.(os_pid, "VmHWM:") - before

    times =
      for _ <- 1..runs do
        {us, {200, _}} = :timer.tc(fn -> HTTPClient.get(socket, path.(query)) end)
        us
      end

    {name, %{median: Enum.at(Enum.sort(times), div(runs, 2)), bytes: byte_size(body), rss: growth}}
  end
end

post_all = fn port, path, bodies, type ->
  socket = HTTPClient.connect(port)

  Enum.each(bodies, fn b ->
    s = HTTPClient.post(socket, path, b, type)
    s in [200, 204] || raise("#{path}: #{s}")
  end)
end

prom_dir = Path.join(System.tmp_dir!(), "tms_bench_promql_prom")
File.rm_rf!(prom_dir)
prom = PrometheusPeer.start!(prom_dir, 19_090, ["--web.enable-remote-write-receiver"])
# VictoriaMetrics with its response cache off.
vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_promql_vm"), 18_432, ["-search.disableCache"])
dir = Path.join(System.tmp_dir!(), "tms_bench_promql")
File.rm_rf!(dir)

{:ok, _} =
  Tms.start_link(name: :promql_bench, data_dir: dir, max_buffered_points: 200_000_000, http: [port: 0])

for h <- 1..hosts do
  %{text: text, rw: rw} = RealData.bodies(data, h..h, [:text, :rw])
  post_all.(19_090, "/api/v1/write", rw, "application/x-protobuf")
  post_all.(18_432, "/api/v1/import/prometheus", text, "text/plain")
  Enum.each(text, fn body -> {:ok, _} = Tms.import(:promql_bench, :prometheus_text, body) end)
end

:httpc.request(String.to_charlist(vm.url <> "/internal/force_flush"))
# Tms flushed to segments, as a store an hour old would be.
:ok = Tms.flush(:promql_bench)
IO.puts("loaded")

prom_result = measure.(19_090, prom.pid)
vm_result = measure.(18_432, vm.pid)
tms_result = measure.(Tms.HTTP.port(:promql_bench), System.pid())
PrometheusPeer.stop(prom)
Victoria.stop(vm)
:ok = Tms.stop(:promql_bench)
File.rm_rf!(dir)

ms = fn us -> :io_lib.format("~.2f", [us / 1000]) |> to_string() end
ratio = fn a, b -> :io_lib.format("~.2fx", [a / b]) |> to_string() end

IO.puts("\nmedian latency over HTTP, #{runs} runs (1 h at 15 s step, #{hosts} hosts)\n")

IO.puts(
  String.pad_trailing("query", 28) <>
    Enum.map_join(
      ["Prometheus", "VM", "Tms", "Tms/Prom", "Tms/VM", "answer"],
      "",
      &String.pad_leading(&1, 11)
    )
)

for {name, _} <- queries do
  [p, v, t] = Enum.map([prom_result, vm_result, tms_result], &get_in(&1, [name, :median]))

  IO.puts(
    String.pad_trailing(name, 28) <>
      Enum.map_join(
        [ms.(p), ms.(v), ms.(t), ratio.(t, p), ratio.(t, v), "#{tms_result[name].bytes} B"],
        "",
        &String.pad_leading(&1, 11)
      )
  )
end

{heaviest, _} = Enum.max_by(tms_result, fn {_, r} -> r.median end)

IO.puts(
  "\npeak RSS growth over the first run of the heaviest query for Tms (#{heaviest}): " <>
    Enum.map_join([{"Prometheus", prom_result}, {"VM", vm_result}, {"Tms", tms_result}], ", ", fn {n, r} ->
      "#{n} #{Float.round(r[heaviest].rss / 1_048_576, 1)} MiB"
    end)
)
