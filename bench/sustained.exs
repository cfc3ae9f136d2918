# The large devops workload (1,000 hosts x 10 metrics x 1 day at 10 s =
# 86.4 M points) written through write_batch_raw by two callers until every
# point is in durable, compacted segments; then bytes per point on disk,
# peak RSS of the VM, and the time to open the store.
#
#   MIX_ENV=bench mix run bench/sustained.exs            (HOSTS=100 for a quick run)

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/workload.ex", __DIR__)
alias Tms.Workload
{:ok, _} = Application.ensure_all_started(:tms)

hosts = String.to_integer(System.get_env("HOSTS", "1000"))
blocks = div(hosts, 100)
dir = Path.join(System.tmp_dir!(), "tms_bench_sustained")
File.rm_rf!(dir)
ceiling = 20_000_000
{:ok, _} = Tms.start_link(name: :s, data_dir: dir, max_buffered_points: ceiling)

# One day, starting just past midnight: with the scrape jitter (±25 ms)
# every point stays in one day partition.
day = 86_400_000
start = div(System.os_time(:millisecond), day) * day - 2 * day + 30

# Generating 86 M points in Elixir takes minutes, so 100 hosts are
# generated and their batches reused for each block of 100 hosts with the
# series ids shifted (every block's own series, same values).
{gen_us, batches} =
  :timer.tc(fn ->
    w = Workload.new(hosts: 100, metrics: 10, start: start)

    ids =
      for b <- 0..(blocks - 1), {metric, labels} <- Workload.series(w) do
        labels = Map.update!(labels, "hostname", &"#{&1}_b#{b}")
        elem(Tms.resolve(:s, metric, labels), 1)
      end
      |> Enum.chunk_every(1000)

    base =
      w
      |> Workload.scrapes(8_640)
      |> Enum.chunk_every(10)
      |> Enum.map(&Enum.map_join(&1, fn s -> Workload.raw(hd(ids), s) end))

    for block_ids <- ids, offset = hd(block_ids) - hd(hd(ids)), batch <- base do
      if offset == 0,
        do: batch,
        else:
          for(<<id::little-64, rest::binary-16 <- batch>>,
            into: <<>>,
            do: <<id + offset::little-64, rest::binary>>
          )
    end
  end)

total = length(batches) * 10_000

IO.puts(
  "#{hosts} hosts: #{total} points in #{length(batches)} raw batches, generated in #{div(gen_us, 1_000_000)} s"
)

rss = fn ->
  [kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"), capture: :all_but_first)
  String.to_integer(kb) * 1024
end

peak = :atomics.new(1, [])
rss_before = rss.()

sampler =
  spawn(fn ->
    Stream.repeatedly(fn ->
      now = rss.()
      if now > :atomics.get(peak, 1), do: :atomics.put(peak, 1, now)
      Process.sleep(20)
    end)
    |> Stream.run()
  end)

write = fn batch ->
  case Tms.write_batch_raw(:s, batch) do
    :ok -> :ok
    # Ingest outruns compression: the memory ceiling pushes back.
    {:error, %Tms.Error{kind: :overloaded}} -> Process.sleep(5) && :retry
  end
end

{ingest_us, retries} =
  :timer.tc(fn ->
    batches
    |> Enum.split(div(length(batches), 2))
    |> Tuple.to_list()
    |> Enum.map(fn half ->
      Task.async(fn ->
        Enum.reduce(half, 0, fn batch, retries ->
          Stream.repeatedly(fn -> write.(batch) end)
          |> Enum.take_while(&(&1 == :retry))
          |> length()
          |> Kernel.+(retries)
        end)
      end)
    end)
    |> Enum.map(&Task.await(&1, :infinity))
    |> Enum.sum()
  end)

{flush_us, :ok} = :timer.tc(fn -> Tms.flush(:s) end)

{compact_us, {:ok, compacted}} = :timer.tc(fn -> Tms.compact(:s) end)

info = Tms.info!(:s)
durable_s = (ingest_us + flush_us) / 1_000_000

Process.exit(sampler, :kill)
mb = fn bytes -> div(bytes, 1_048_576) end

IO.puts("""

ingest (2 callers, #{retries} overloaded retries): #{Float.round(ingest_us / 1_000_000, 2)} s
final flush: #{Float.round(flush_us / 1_000_000, 2)} s
sustained, until every point is in durable segments: #{Float.round(total / durable_s / 1_000_000, 2)} M points/s
compaction: #{Float.round(compact_us / 1_000_000, 2)} s (#{compacted.segments_merged} segments into #{info.segments})
on disk: #{info.segment_bytes} bytes for #{total} points = #{Float.round(info.segment_bytes / total, 3)} bytes/point
RSS of the VM: #{mb.(rss_before)} MB before ingest (the generated batches), peak #{mb.(:atomics.get(peak, 1))} MB during ingest and flush: the store added at most #{mb.(:atomics.get(peak, 1) - rss_before)} MB (memory ceiling: #{ceiling} buffered points = #{mb.(ceiling * 16)} MB of buffers, plus their WAL pages)
""")

:ok = Tms.stop(:s)

Tms.Bench.run(
  %{
    "open, #{info.chunks} chunks" => fn ->
      {:ok, _} = Tms.start_link(name: :s, data_dir: dir)
      :ok = Tms.stop(:s)
    end
  },
  warmup: 1,
  time: 5,
  title: "open #{hosts} hosts"
)
