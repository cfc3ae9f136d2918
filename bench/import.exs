# Real-data import, Tms in-process against VictoriaMetrics over HTTP, same
# bodies, same run. The scrape in ../shared/data (node_exporter, Prometheus
# and VictoriaMetrics every 2 s for 40 minutes) is replicated to HOSTS hosts
# by a `host` label; each text and JSON-lines body is one scrape of one
# target, each remote_write body about 2,000 samples as Prometheus' queue
# sends them. VictoriaMetrics gets the bodies over 2 keep-alive connections,
# Tms from 2 processes. Every format writes its own series (a `fmt` label,
# VictoriaMetrics' extra_label), so each starts from an empty series set.
#
#   MIX_ENV=bench mix run bench/import.exs            (HOSTS=1 for a quick run)

Code.require_file("support/victoria.ex", __DIR__)
Code.require_file("support/real_data.ex", __DIR__)
alias Tms.Bench.{RealData, Victoria}
{:ok, _} = Application.ensure_all_started(:tms)

hosts = String.to_integer(System.get_env("HOSTS", "4"))

{load_us, {series, scrapes} = data} = :timer.tc(&RealData.load/0)
samples_per_host = RealData.samples(scrapes)
total = samples_per_host * hosts

IO.puts(
  "#{tuple_size(series)} series, #{length(scrapes)} scrapes, #{samples_per_host} samples per host, x#{hosts} hosts = #{total} samples (loaded in #{div(load_us, 1_000_000)} s)"
)

{gen_us, %{text: text, json: json, rw: rw, labeled: labeled}} =
  :timer.tc(fn -> RealData.bodies(data, hosts) end)

IO.puts(
  "bodies: #{length(text)} text, #{length(json)} JSON lines, #{length(rw)} remote_write, generated in #{div(gen_us, 1_000_000)} s"
)

# ---------------------------------------------------------------- runs

# Two callers, each taking every other body; samples/s over the wall time.
two = fn bodies, fun ->
  {a, b} = bodies |> Enum.with_index() |> Enum.split_with(fn {_, i} -> rem(i, 2) == 0 end)
  parent = self()

  # Spawning copies each caller's part (terms, for write_batch) into its
  # heap before the clock starts, which a :go message does. The heap is
  # sized to twice the part: a caller holding a whole run's entries (over a
  # gigabyte of maps) would otherwise spend the timed run copying them in
  # its own garbage collections, which measures the bench, not the store.
  callers =
    for part <- [a, b] do
      :erlang.spawn_opt(
        fn ->
          receive do
            :go ->
              Enum.each(part, fn {body, _} -> fun.(body) end)
              send(parent, {:done, self()})
          end
        end,
        [:monitor, min_heap_size: 2 * :erts_debug.flat_size(part) + 100_000]
      )
    end

  {us, _} =
    :timer.tc(fn ->
      Enum.each(callers, fn {pid, _} -> send(pid, :go) end)

      Enum.each(callers, fn {pid, ref} ->
        receive do
          {:done, ^pid} -> Process.demonitor(ref, [:flush])
          {:DOWN, ^ref, :process, _, reason} -> raise "a caller failed: #{inspect(reason)}"
        end
      end)
    end)

  total / (us / 1_000_000)
end

vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_import_vm"), 18_429)
:httpc.set_options(max_sessions: 2, max_keep_alive_length: 100_000)
vm_text = two.(text, fn b -> 204 = Victoria.post(vm, "/api/v1/import/prometheus?extra_label=fmt=text", b) end)

vm_rw =
  two.(rw, fn b ->
    204 = Victoria.post(vm, "/api/v1/write?extra_label=fmt=rw", b, ~c"application/x-protobuf")
  end)

vm_json = two.(json, fn b -> 204 = Victoria.post(vm, "/api/v1/import?extra_label=fmt=json", b) end)
Victoria.stop(vm)

dir = Path.join(System.tmp_dir!(), "tms_bench_import")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :imp, data_dir: dir, max_buffered_points: 200_000_000)

tms_text =
  two.(text, fn b -> {:ok, _} = Tms.import(:imp, :prometheus_text, b, labels: %{"fmt" => "text"}) end)

tms_rw = two.(rw, fn b -> {:ok, _} = Tms.import(:imp, :remote_write, b, labels: %{"fmt" => "rw"}) end)
tms_json = two.(json, fn b -> {:ok, _} = Tms.import(:imp, :json_lines, b, labels: %{"fmt" => "json"}) end)
tms_batch = two.(labeled, fn b -> :ok = Tms.write_batch(:imp, b) end)
info = Tms.info!(:imp)
:ok = Tms.stop(:imp)
File.rm_rf!(dir)

m = fn rate -> "#{Float.round(rate / 1_000_000, 2)} M samples/s" end
x = fn a, b -> "#{Float.round(a / b, 2)}x" end

IO.puts("""

| format | VictoriaMetrics 1.79 (HTTP, 2 connections) | Tms (in-process, 2 callers) | ratio |
|---|---|---|---|
| Prometheus text | #{m.(vm_text)} | #{m.(tms_text)} | #{x.(tms_text, vm_text)} |
| remote_write | #{m.(vm_rw)} | #{m.(tms_rw)} | #{x.(tms_rw, vm_rw)} |
| JSON lines | #{m.(vm_json)} | #{m.(tms_json)} | #{x.(tms_json, vm_json)} |
| labeled write_batch, a labels map per entry, vs VictoriaMetrics' text | #{m.(vm_text)} | #{m.(tms_batch)} | #{x.(tms_batch, vm_text)} |

Tms series: #{info.series} (4 formats x #{hosts} hosts x #{tuple_size(series)} series, empty label values dropped)
""")
