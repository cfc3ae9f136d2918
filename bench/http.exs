# Ingest over HTTP, Tms against VictoriaMetrics, same bodies, same run:
# remote_write (bodies of about 2,000 samples, as Prometheus' queue sends
# them) and Prometheus text (one scrape of one target a body) built from the
# real scrape in ../shared/data, replicated to HOSTS hosts. Each server gets
# the bodies over 4 keep-alive connections from the same minimal client
# (bench/support/http_client.ex); every format writes its own series (an
# extra_label). Also the latency of one remote_write body, p50 and p99.
#
#   MIX_ENV=bench mix run bench/http.exs            (HOSTS=1 for a quick run)

Code.require_file("support/victoria.ex", __DIR__)
Code.require_file("support/real_data.ex", __DIR__)
Code.require_file("support/http_client.ex", __DIR__)
alias Tms.Bench.{HTTPClient, RealData, Victoria}
{:ok, _} = Application.ensure_all_started(:tms)

hosts = String.to_integer(System.get_env("HOSTS", "2"))
connections = 4
{_series, scrapes} = data = RealData.load()
total = RealData.samples(scrapes) * hosts
%{text: text, rw: rw} = RealData.bodies(data, hosts, [:text, :rw])
IO.puts("#{total} samples per format: #{length(rw)} remote_write bodies, #{length(text)} text bodies")

# Samples/s over the wall time of `connections` callers taking the bodies
# in turn, and every request's latency in microseconds.
run = fn port, path, bodies, content_type ->
  parts =
    bodies
    |> Enum.with_index()
    |> Enum.group_by(fn {_, i} -> rem(i, connections) end, fn {b, _} -> b end)
    |> Map.values()

  parent = self()

  callers =
    for part <- parts do
      spawn_link(fn ->
        socket = HTTPClient.connect(port)

        receive do
          :go ->
            latencies =
              for body <- part do
                {us, 204} = :timer.tc(fn -> HTTPClient.post(socket, path, body, content_type) end)
                us
              end

            send(parent, {:done, self(), latencies})
        end
      end)
    end

  {us, latencies} =
    :timer.tc(fn ->
      Enum.each(callers, &send(&1, :go))
      Enum.flat_map(callers, fn pid -> receive do: ({:done, ^pid, l} -> l) end)
    end)

  {total / (us / 1_000_000), Enum.sort(latencies)}
end

pct = fn sorted, p -> Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * p))) end
rw_type = "application/x-protobuf"

vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_http_vm"), 18_431)
{vm_rw, vm_rw_lat} = run.(18_431, "/api/v1/write?extra_label=fmt=rw", rw, rw_type)
{vm_text, _} = run.(18_431, "/api/v1/import/prometheus?extra_label=fmt=text", text, "text/plain")
Victoria.stop(vm)

dir = Path.join(System.tmp_dir!(), "tms_bench_http")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :http_bench, data_dir: dir, max_buffered_points: 200_000_000, http: [port: 0])
port = Tms.HTTP.port(:http_bench)
{tms_rw, tms_rw_lat} = run.(port, "/api/v1/write?extra_label=fmt=rw", rw, rw_type)
{tms_text, _} = run.(port, "/api/v1/import/prometheus?extra_label=fmt=text", text, "text/plain")
:ok = Tms.stop(:http_bench)
File.rm_rf!(dir)

m = fn rate -> "#{Float.round(rate / 1_000_000, 2)} M samples/s" end
ms = fn us -> "#{Float.round(us / 1000, 2)} ms" end

IO.puts("""

| over HTTP, #{connections} connections | VictoriaMetrics 1.79 | Tms | ratio |
|---|---|---|---|
| remote_write, #{length(rw)} bodies of ~2,000 samples | #{m.(vm_rw)} | #{m.(tms_rw)} | #{Float.round(tms_rw / vm_rw, 2)}x |
| Prometheus text, #{length(text)} scrapes | #{m.(vm_text)} | #{m.(tms_text)} | #{Float.round(tms_text / vm_text, 2)}x |
| one remote_write body, p50 / p99 | #{ms.(pct.(vm_rw_lat, 0.5))} / #{ms.(pct.(vm_rw_lat, 0.99))} | #{ms.(pct.(tms_rw_lat, 0.5))} / #{ms.(pct.(tms_rw_lat, 0.99))} | |
""")
