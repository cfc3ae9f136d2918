# Ingest throughput: write_batch_raw and labeled write_batch from one and
# two callers, on pre-generated batches of the devops workload (100 hosts x
# 10 metrics, 10,000 points per call, WAL on with the default sync).
#
#   MIX_ENV=bench mix run bench/ingest.exs

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/workload.ex", __DIR__)
alias Tms.Workload
{:ok, _} = Application.ensure_all_started(:tms)

dir = Path.join(System.tmp_dir!(), "tms_bench_ingest")
File.rm_rf!(dir)
# A high ceiling: the benchmark writes faster than one flush a second drains.
{:ok, _} = Tms.start_link(name: :i, data_dir: dir, max_buffered_points: 200_000_000)

w = Workload.new(hosts: 100, metrics: 10, start: System.os_time(:millisecond) - 86_400_000)
scrapes = w |> Workload.scrapes(400) |> Enum.chunk_every(10)
ids = for {metric, labels} <- Workload.series(w), do: elem(Tms.resolve(:i, metric, labels), 1)
raw = scrapes |> Enum.map(fn batch -> Enum.map_join(batch, &Workload.raw(ids, &1)) end) |> List.to_tuple()

labeled =
  scrapes |> Enum.map(fn batch -> Enum.flat_map(batch, &Workload.entries(w, &1)) end) |> List.to_tuple()

n = tuple_size(raw)
IO.puts("#{n} batches of #{byte_size(elem(raw, 0)) |> div(24)} points each, generated")

# A copy to another process does not keep terms shared: in the callers
# above every entry carries its own labels map. Applications that build a
# host's labels once and reuse them keep one map per series; these callers
# re-share their copy to measure that shape too.
reshare = fn batches ->
  batches
  |> Tuple.to_list()
  |> Enum.map_reduce(%{}, fn batch, seen ->
    Enum.map_reduce(batch, seen, fn {m, l, v, t}, seen ->
      shared = Map.get(seen, l, l)
      {{m, shared, v, t}, Map.put_new(seen, l, l)}
    end)
  end)
  |> elem(0)
  |> List.to_tuple()
end

# A caller is a long-lived process holding its own copy of the batches
# (copied once, before measuring); each run tells it to write its next batch.
caller = fn write, batches ->
  pid =
    spawn_link(fn ->
      batches = if batches == :shared, do: reshare.(labeled), else: batches

      Stream.iterate(0, &(&1 + 1))
      |> Enum.each(fn i ->
        receive do
          {:go, from} ->
            :ok = write.(elem(batches, rem(i, tuple_size(batches))))
            send(from, :done)
        end
      end)
    end)

  pid
end

run_callers = fn pids ->
  fn ->
    Enum.each(pids, &send(&1, {:go, self()}))
    Enum.each(pids, fn _ -> receive do: (:done -> :ok) end)
  end
end

raw_write = &Tms.write_batch_raw(:i, &1)
labeled_write = &Tms.write_batch(:i, &1)
raw_callers = for _ <- 1..2, do: caller.(raw_write, raw)
labeled_callers = for _ <- 1..2, do: caller.(labeled_write, labeled)

shared_callers = for _ <- 1..2, do: caller.(fn b -> Tms.write_batch(:i, b) end, :shared)

Tms.Bench.run(%{"write_batch_raw, 1 caller" => run_callers.(Enum.take(raw_callers, 1))},
  time: 5,
  items: 10_000,
  title: "ingest write_batch_raw"
)

Tms.Bench.run(%{"write_batch_raw, 2 callers" => run_callers.(raw_callers)},
  time: 5,
  items: 20_000,
  title: "ingest write_batch_raw 2 callers"
)

Tms.Bench.run(
  %{
    "write_batch labeled, 1 caller, a map per entry" => run_callers.(Enum.take(labeled_callers, 1)),
    "write_batch labeled, 1 caller, a map per series" => run_callers.(Enum.take(shared_callers, 1))
  },
  time: 5,
  items: 10_000,
  title: "ingest write_batch"
)

Tms.Bench.run(
  %{
    "write_batch labeled, 2 callers, a map per entry" => run_callers.(labeled_callers),
    "write_batch labeled, 2 callers, a map per series" => run_callers.(shared_callers)
  },
  time: 5,
  items: 20_000,
  title: "ingest write_batch 2 callers"
)

:ok = Tms.stop(:i)
