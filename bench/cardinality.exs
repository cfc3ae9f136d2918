# What a series costs: 1,000,000 series created through labeled write_batch
# (one point each, 4 labels like a scrape target's), flushed, then the
# VM's resident memory per series, the time to reopen the store, and the
# memory per series of a fresh VM that only opens it.
#
#   MIX_ENV=bench mix run bench/cardinality.exs          (SERIES=200000 for a quick run)

{:ok, _} = Application.ensure_all_started(:tms)

# Opens the store in a fresh VM (no garbage of the creating run) and answers
# its resident memory before and after, and the open's time.
fresh_open = fn dir ->
  code = """
  rss = fn -> [kb] = Regex.run(~r/VmRSS:\\s+(\\d+) kB/, File.read!("/proc/self/status"), capture: :all_but_first); String.to_integer(kb) * 1024 end
  {:ok, _} = Application.ensure_all_started(:tms)
  before = rss.()
  {us, {:ok, _}} = :timer.tc(fn -> Tms.start_link(name: :fresh, data_dir: #{inspect(dir)}) end)
  for pid <- Process.list(), do: :erlang.garbage_collect(pid)
  IO.puts("\#{before} \#{rss.()} \#{us}")
  """

  ebin = Path.join(Mix.Project.build_path(), "lib/tms/ebin")
  {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", code])
  [before, after_open, us] = out |> String.split() |> Enum.take(-3) |> Enum.map(&String.to_integer/1)
  {before, after_open, us}
end

n = String.to_integer(System.get_env("SERIES", "1000000"))
dir = Path.join(System.tmp_dir!(), "tms_bench_cardinality")
File.rm_rf!(dir)

rss = fn ->
  [kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"), capture: :all_but_first)
  String.to_integer(kb) * 1024
end

settle = fn ->
  for pid <- Process.list(), do: :erlang.garbage_collect(pid)
  Process.sleep(200)
end

mb = fn bytes -> Float.round(bytes / 1_048_576, 1) end
ts = System.os_time(:millisecond)

{:ok, _} = Tms.start_link(name: :c, data_dir: dir, max_series: n)
settle.()
before = rss.()

{create_us, :ok} =
  :timer.tc(fn ->
    0..(n - 1)
    |> Stream.chunk_every(10_000)
    |> Enum.each(fn chunk ->
      entries =
        for i <- chunk do
          labels = %{
            "instance" => "10.#{div(i, 65_536)}.#{rem(div(i, 256), 256)}.#{rem(i, 256)}:9100",
            "job" => "node",
            "cpu" => Integer.to_string(rem(i, 64)),
            "mode" => "user"
          }

          {"node_cpu_seconds_total", labels, 1.0, ts}
        end

      :ok = Tms.write_batch(:c, entries)
    end)
  end)

:ok = Tms.flush(:c)
settle.()
after_create = rss.()
info = Tms.info!(:c)
:ok = Tms.stop(:c)

{open_us, {:ok, _}} = :timer.tc(fn -> Tms.start_link(name: :c, data_dir: dir) end)
reopened = Tms.info!(:c)
:ok = Tms.stop(:c)
registry = File.stat!(Path.join(dir, "registry.tms")).size
{fresh_before, fresh_after, fresh_us} = fresh_open.(dir)

IO.puts("""
#{info.series} series created in #{Float.round(create_us / 1_000_000, 2)} s (#{round(info.series / (create_us / 1_000_000))} series/s)
resident memory: #{mb.(before)} MB before, #{mb.(after_create)} MB after creating and flushing: #{round((after_create - before) / info.series)} bytes per series
reopen: #{Float.round(open_us / 1000, 1)} ms for #{reopened.series} series (#{Float.round(open_us / 1000 / (reopened.series / 1_000_000), 1)} ms per million), #{mb.(registry)} MB registry file, #{reopened.wal_replayed_points} WAL points replayed
opened in a fresh VM: #{Float.round(fresh_us / 1000, 1)} ms; resident memory #{mb.(fresh_before)} MB before, #{mb.(fresh_after)} MB after: #{round((fresh_after - fresh_before) / reopened.series)} bytes per series
""")

File.rm_rf!(dir)
