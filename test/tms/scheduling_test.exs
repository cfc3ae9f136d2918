defmodule Tms.SchedulingTest do
  # No NIF may hold a normal scheduler for long: heavy ingest (single
  # writes, labeled and raw batches of every size), queries and flushes run
  # together while the VM reports every schedule longer than 10 ms.
  # async: false because a VM has one system monitor.
  use Tms.Case, async: false
  import Bitwise

  test "no long schedule comes from a NIF call", ctx do
    store =
      start_store(ctx, flush_threshold: 2_000, flush_interval: 10, cold_after: 0, cold_flush_interval: 50)

    :erlang.system_monitor(self(), [{:long_schedule, 10}])
    on_exit(fn -> :erlang.system_monitor(:undefined) end)

    {:ok, ids} =
      Enum.reduce(0..199, {:ok, []}, fn h, {:ok, acc} ->
        {:ok, id} = Tms.resolve(store, "raw", %{"h" => "#{h}"})
        {:ok, [id | acc]}
      end)

    raw = fn n, t0 ->
      for i <- 0..(n - 1),
          into: <<>>,
          do: <<Enum.at(ids, rem(i, 200))::little-64, t0 + i::little-signed-64, i * 0.5::little-float-64>>
    end

    jobs = [
      fn -> for t <- 1..2_000, do: :ok = Tms.write(store, "one", %{"w" => "#{rem(t, 50)}"}, t, t) end,
      fn -> for t <- 1..2_000, do: :ok = Tms.write_async(store, "async", %{"w" => "#{rem(t, 50)}"}, t, t) end,
      fn ->
        for n <- [10, 499, 501, 5_000, 50_000], round <- 1..3 do
          :ok =
            Tms.write_batch(
              store,
              for(i <- 1..n, do: {"lab", %{"h" => "#{rem(i, 300)}"}, i, round * 100_000 + i})
            )
        end
      end,
      fn ->
        for n <- [1, 4_096, 4_097, 100_000, 400_000],
            r <- 1..3,
            do: :ok = Tms.write_batch_raw(store, raw.(n, r * 1_000_000))
      end,
      fn -> for _ <- 1..50, do: {:ok, _} = Tms.query_range(store, "lab", %{}, 0, 1 <<< 40) end,
      fn -> for _ <- 1..20, do: :ok = Tms.flush(store) end
    ]

    jobs |> Enum.map(&Task.async/1) |> Enum.each(&Task.await(&1, 120_000))
    :erlang.system_monitor(:undefined)

    long = collect([])

    from_nif =
      Enum.filter(long, fn {_pid, info} ->
        Enum.any?([info[:in], info[:out]], &match?({Tms.Native, _, _}, &1))
      end)

    IO.puts("long schedules seen: #{length(long)}, from Tms.Native: #{length(from_nif)}")
    assert from_nif == []
  end

  defp collect(acc) do
    receive do
      {:monitor, pid, :long_schedule, info} -> collect([{pid, info} | acc])
    after
      100 -> acc
    end
  end
end
