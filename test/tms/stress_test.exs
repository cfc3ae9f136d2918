defmodule Tms.StressTest do
  # Writers, readers and every housekeeping timer at once, for a bounded
  # time; then every acknowledged point must be found, exactly.
  use Tms.Case, async: true
  import Bitwise

  @moduletag timeout: 120_000
  @far 1 <<< 50

  test "8 writers, 4 readers and short timers lose nothing acknowledged", ctx do
    store =
      start_store(ctx,
        shards: 2,
        partition_duration: 5_000,
        flush_threshold: 64,
        flush_interval: 5,
        cold_after: 0,
        cold_flush_interval: 10,
        # A century: the test data sits near 1970, so nothing is deleted,
        # but the cutoff is recorded every few milliseconds.
        retention: 3_153_600_000_000,
        retention_interval: 15
      )

    deadline = System.monotonic_time(:millisecond) + 3_000
    stop? = fn -> System.monotonic_time(:millisecond) > deadline end

    writers =
      for w <- 1..8 do
        Task.async(fn -> write_until(store, w, stop?, 0, %{}) end)
      end

    readers =
      for r <- 1..4 do
        Task.async(fn -> read_until(store, r, stop?, 0) end)
      end

    written = writers |> Enum.map(&Task.await(&1, 60_000)) |> Enum.reduce(&Map.merge/2)
    reads = readers |> Enum.map(&Task.await(&1, 60_000)) |> Enum.sum()

    check = fn store ->
      {:ok, result} = Tms.query_range(store, "stress", %{}, 0, @far)
      found = for %{labels: l, points: ps} <- result, {t, v} <- ps, into: %{}, do: {{l, t}, v}
      assert map_size(found) == map_size(written)
      assert found == written
    end

    check.(store)

    IO.puts(
      "stress: #{map_size(written)} acknowledged points checked, #{reads} queries answered, #{Tms.info!(store).flushes} flushes"
    )

    check.(restart_store(ctx))
  end

  # Each writer owns its series, so "the last write of a timestamp" is the
  # writer's own last one; it remembers what was acknowledged.
  defp write_until(store, w, stop?, round, acked) do
    if stop?.() do
      acked
    else
      labels = %{"writer" => "w#{w}", "part" => "#{rem(round, 3)}"}
      points = for i <- 0..49, do: {rem(round * 50 + i, 20_000), round * 1.0}

      result =
        case rem(round + w, 4) do
          0 ->
            Tms.write_batch(store, for({t, v} <- points, do: {"stress", labels, v, t}))

          1 ->
            {:ok, id} = Tms.resolve(store, "stress", labels)

            Tms.write_batch_raw(
              store,
              for(
                {t, v} <- points,
                into: <<>>,
                do: <<id::little-64, t::little-signed-64, v::little-float-64>>
              )
            )

          _ ->
            Enum.reduce_while(points, :ok, fn {t, v}, :ok ->
              case Tms.write(store, "stress", labels, v, t) do
                :ok -> {:cont, :ok}
                error -> {:halt, error}
              end
            end)
        end

      :ok = result
      acked = Enum.reduce(points, acked, fn {t, v}, acc -> Map.put(acc, {labels, t}, v) end)
      write_until(store, w, stop?, round + 1, acked)
    end
  end

  defp read_until(store, r, stop?, count) do
    if stop?.() do
      count
    else
      opts =
        Enum.at(
          [[], [step: 1_000, agg: :avg], [step: 500, agg: :count, group_by: ["writer"]], [format: :binary]],
          r - 1
        )

      {:ok, result} = Tms.query_range(store, "stress", [{"writer", :regex, "w.*"}], 0, @far, opts)

      for %{points: points} <- result, is_list(points) do
        timestamps = Enum.map(points, &elem(&1, 0))
        assert timestamps == Enum.sort(Enum.uniq(timestamps))
      end

      read_until(store, r, stop?, count + 1)
    end
  end
end
