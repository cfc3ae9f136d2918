# Bytes per sample on disk, on the real scrape in ../shared/data as it was
# scraped (one host per target), Tms against VictoriaMetrics in one run.
# Both get the same Prometheus text bodies, one per scrape of one target,
# then merge everything: VictoriaMetrics' force_flush and force_merge, and
# Tms.compact/1 (after four flushes along the way). Bytes are the whole data directory of each (`du -sb`):
# VictoriaMetrics' includes its index, Tms' its registry and manifest.
#
#   MIX_ENV=bench mix run bench/bytes.exs

Code.require_file("support/victoria.ex", __DIR__)
Code.require_file("support/real_data.ex", __DIR__)
alias Tms.Bench.{RealData, Victoria}
{:ok, _} = Application.ensure_all_started(:tms)

{series, scrapes} = data = RealData.load()
samples = RealData.samples(scrapes)
%{text: bodies} = RealData.bodies(data, 1, [:text])
IO.puts("#{tuple_size(series)} series, #{length(bodies)} scrapes, #{samples} samples")

du = fn dir ->
  {out, 0} = System.cmd("du", ["-sb", dir])
  out |> String.split() |> hd() |> String.to_integer()
end

vm = Victoria.start!(Path.join(System.tmp_dir!(), "tms_bench_bytes_vm"), 18_430)
Enum.each(bodies, fn b -> 204 = Victoria.post(vm, "/api/v1/import/prometheus", b) end)
Victoria.force_merge(vm, du)
vm_bytes = du.(vm.dir)

# What VictoriaMetrics says it stores, to compare like with like.
{200, metrics} = Victoria.get(vm, "/metrics")

vm_rows =
  for line <- String.split(metrics, "\n"),
      String.starts_with?(line, "vm_rows{type=\"storage/"),
      reduce: 0 do
    acc -> acc + (line |> String.split(" ") |> List.last() |> String.to_integer())
  end

Victoria.stop(vm)

dir = Path.join(System.tmp_dir!(), "tms_bench_bytes")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :bytes, data_dir: dir)
# Flushed every ten minutes of data, as buffers would be over a day, so
# compaction has segments to merge.
bodies
|> Enum.chunk_every(div(length(bodies), 4) + 1)
|> Enum.each(fn part ->
  Enum.each(part, fn b -> {:ok, _} = Tms.import(:bytes, :prometheus_text, b) end)
  :ok = Tms.flush(:bytes)
end)

{:ok, compacted} = Tms.compact(:bytes)
info = Tms.info!(:bytes)
tms_bytes = du.(dir)
segment_bytes = du.(Path.join(dir, "chunks"))
:ok = Tms.stop(:bytes)
unless System.get_env("KEEP"), do: File.rm_rf!(dir)

per = fn bytes, n -> Float.round(bytes / n, 3) end

IO.puts("""

| bytes per sample, real scrape, after a full merge | VictoriaMetrics 1.79 | Tms | Tms / VictoriaMetrics |
|---|---|---|---|
| whole data directory | #{per.(vm_bytes, samples)} | #{per.(tms_bytes, samples)} | #{Float.round(tms_bytes / vm_bytes, 2)}x |

VictoriaMetrics: #{vm_bytes} bytes, #{vm_rows} rows stored (of #{samples} samples sent).
Tms: #{tms_bytes} bytes, of which segments #{segment_bytes} (#{per.(segment_bytes, samples)} per sample); #{info.series} series, #{info.segments} segments, #{info.chunks} chunks (compaction merged #{compacted.segments_merged} segments).
""")
