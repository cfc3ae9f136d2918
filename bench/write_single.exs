# Tms.write/5 (and write_async/5) throughput from 1, 2, 8 and 64 concurrent
# writer processes, through the store's ingestion shards, and the memory the
# shards hold under that load.
#
#   MIX_ENV=bench mix run bench/write_single.exs

Code.require_file("support/harness.ex", __DIR__)
{:ok, _} = Application.ensure_all_started(:tms)

dir = Path.join(System.tmp_dir!(), "tms_bench_write_single")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :bench, data_dir: dir)

per_run = 64_000
series = 1_000

labels =
  List.to_tuple(for s <- 0..(series - 1), do: %{"host" => "host_#{rem(s, 100)}", "core" => "#{div(s, 100)}"})

clock = :counters.new(1, [])

writer = fn write, procs ->
  fn ->
    base = :counters.get(clock, 1)
    :counters.add(clock, 1, per_run)

    1..procs
    |> Enum.map(fn p ->
      Task.async(fn ->
        for i <- p..per_run//procs,
            do: :ok = write.(:bench, "cpu", elem(labels, rem(i, series)), i * 0.5, base + i)
      end)
    end)
    |> Enum.each(&Task.await(&1, :infinity))
  end
end

peak = :counters.new(1, [])

sampler =
  spawn(fn ->
    Stream.repeatedly(fn ->
      memory = Tms.info!(:bench).shard_memory_bytes
      if memory > :counters.get(peak, 1), do: :counters.put(peak, 1, memory)
      Process.sleep(20)
    end)
    |> Stream.run()
  end)

jobs =
  for procs <- [1, 2, 8, 64], into: %{} do
    {"write/5 sync, #{String.pad_leading(to_string(procs), 2)} writers", writer.(&Tms.write/5, procs)}
  end

Tms.Bench.run(jobs, warmup: 1, time: 5, items: per_run, title: "Tms.write single points")

async = fn store, metric, labels, value, ts ->
  case Tms.write_async(store, metric, labels, value, ts) do
    :ok -> :ok
    {:error, %Tms.Error{kind: :overloaded}} -> Process.sleep(1) && :ok
  end
end

Tms.Bench.run(%{"write_async/5, 64 writers" => writer.(async, 64)},
  warmup: 1,
  time: 5,
  items: per_run,
  title: "Tms.write_async single points"
)

Process.exit(sampler, :kill)
info = Tms.info!(:bench)

IO.puts(
  "\nshards: #{info.shards}; peak memory held by the shard processes: #{Float.round(:counters.get(peak, 1) / 1_048_576, 2)} MB; now #{Float.round(info.shard_memory_bytes / 1_048_576, 2)} MB"
)

:ok = Tms.stop(:bench)
