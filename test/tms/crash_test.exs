defmodule Tms.CrashTest do
  # Crash safety is tested by crashing: a separate OS process runs a store,
  # reports each acknowledged batch on stdout, and dies without closing the
  # store (halt) or is killed with SIGKILL. The test then opens the same
  # directory and checks that every acknowledged point is there, exactly.
  use Tms.Case, async: true
  import Bitwise

  @moduletag timeout: 120_000
  @series 10
  @per_batch 100

  # Batch `b` writes, for each series s, @per_batch points at ts = b * 1000 + i
  # with value b + s / 100: every point is checkable on its own.
  defp writer_code(dir, sync, then, extra_opts \\ []) do
    """
    Application.ensure_all_started(:tms)
    {:ok, _} = Tms.start_link([name: :child, data_dir: #{inspect(dir)}, wal_sync: #{inspect(sync)}, flush_threshold: 256] ++ #{inspect(extra_opts)})
    ids = for s <- 0..#{@series - 1}, do: elem(Tms.resolve(:child, "m", %{"s" => "\#{s}"}), 1)
    write = fn b ->
      raw = for {id, s} <- Enum.with_index(ids), i <- 0..#{@per_batch - 1}, into: <<>>,
              do: <<id::little-64, (b * 1000 + i)::little-signed-64, (b + s / 100)::little-float-64>>
      :ok = Tms.write_batch_raw(:child, raw)
      IO.puts("acked \#{b}")
    end
    #{then}
    """
  end

  defp run_until(port, stop?, acked \\ -1) do
    receive do
      {^port, {:data, {:eol, "acked " <> b}}} ->
        b = String.to_integer(b)
        if stop?.(b), do: b, else: run_until(port, stop?, b)

      {^port, {:data, _other}} ->
        run_until(port, stop?, acked)

      {^port, {:exit_status, status}} ->
        {:exited, status, acked}
    after
      60_000 -> flunk("the writer process went silent after batch #{acked}")
    end
  end

  defp kill9(port) do
    {:os_pid, pid} = Port.info(port, :os_pid)
    # The shell's builtin kill: no procps needed on the machine.
    {_, 0} = System.cmd("sh", ["-c", "kill -9 #{pid}"])

    receive do
      {^port, {:exit_status, status}} -> status
    after
      10_000 -> flunk("the writer process did not die")
    end
  end

  defp drain(port) do
    receive do
      {^port, {:data, _}} -> drain(port)
    after
      0 -> :ok
    end
  end

  # Every acknowledged batch (each {first, last} range) is complete; every
  # point present is exact.
  defp check(ctx, acked_ranges, opts \\ []) do
    store = start_store(ctx, opts)
    {:ok, result} = Tms.query_range(store, "m", %{}, 0, 1 <<< 40)
    assert length(result) == @series

    for %{labels: %{"s" => s}, points: points} <- result do
      s = String.to_integer(s)
      by_batch = Enum.group_by(points, fn {ts, _} -> div(ts, 1000) end)

      for {first, last} <- acked_ranges, b <- first..last//1 do
        assert length(Map.get(by_batch, b, [])) == @per_batch, "series #{s} lost points of acked batch #{b}"
      end

      for {ts, v} <- points, do: assert(v == div(ts, 1000) + s / 100, "corrupt point #{ts} of series #{s}")
    end

    acked = Enum.sum(for {first, last} <- acked_ranges, do: (last - first + 1) * @series * @per_batch)
    IO.puts("  checked: #{acked} acknowledged points present, none lost or corrupt")
    Tms.info!(store)
  end

  test "a VM halted without a flush loses nothing: the WAL is replayed", ctx do
    port = elixir_process(writer_code(ctx.dir, {:interval, 100}, "Enum.each(0..29, write); :erlang.halt(0)"))
    assert {:exited, 0, 29} = run_until(port, fn _ -> false end)
    info = check(ctx, [{0, 29}])
    assert info.wal_replayed_points > 0
    assert info.wal_corrupt_records == 0
  end

  for {sync, rounds} <- [{{:interval, 100}, 3}, {:always, 2}] do
    test "kill -9 mid-ingest with wal_sync #{inspect(sync)} keeps every acknowledged point", ctx do
      Enum.reduce(1..unquote(rounds), [], fn round, acked_ranges ->
        # A different kill moment each round; later rounds append to the same store.
        start = (round - 1) * 1000
        stop_after = start + 5 + :rand.uniform(40)

        code =
          writer_code(
            ctx.dir,
            unquote(Macro.escape(sync)),
            "Stream.iterate(#{start}, &(&1 + 1)) |> Enum.each(write)"
          )

        port = elixir_process(code)
        acked = run_until(port, &(&1 >= stop_after))
        assert is_integer(acked)
        assert kill9(port) != 0
        drain(port)
        acked_ranges = [{start, acked} | acked_ranges]
        info = check(ctx, acked_ranges)

        IO.puts(
          "kill round #{round} (#{inspect(unquote(Macro.escape(sync)))}): killed after batch #{acked}, replayed #{info.wal_replayed_points} points, torn #{info.wal_torn_bytes} bytes"
        )

        :ok = stop_supervised(ctx.store)
        acked_ranges
      end)
    end
  end

  test "kill -9 mid-flush keeps every acknowledged point", ctx do
    then = """
    Enum.each(0..199, fn b ->
      write.(b)
      if rem(b, 10) == 9, do: spawn(fn -> Tms.flush(:child) end)
    end)
    """

    port = elixir_process(writer_code(ctx.dir, {:interval, 100}, then))
    acked = run_until(port, &(&1 >= 40 + :rand.uniform(100)))
    assert is_integer(acked)
    assert kill9(port) != 0
    info = check(ctx, [{0, acked}])
    assert info.quarantined_files == 0
  end

  test "kill -9 while timers flush, compact and apply retention keeps every acknowledged point", ctx do
    # Timers every few milliseconds: pending flush, cold flush with
    # compaction, and retention (a century: the test data sits near 1970, so
    # it deletes nothing but still records its cutoff each time).
    timers = [
      flush_interval: 5,
      cold_after: 0,
      cold_flush_interval: 10,
      retention: 3_153_600_000_000,
      retention_interval: 15
    ]

    Enum.reduce(1..3, [], fn round, acked_ranges ->
      start = (round - 1) * 1000

      code =
        writer_code(
          ctx.dir,
          {:interval, 100},
          "Stream.iterate(#{start}, &(&1 + 1)) |> Enum.each(write)",
          timers
        )

      port = elixir_process(code)
      acked = run_until(port, &(&1 >= start + 20 + :rand.uniform(60)))
      assert is_integer(acked)
      assert kill9(port) != 0
      drain(port)
      acked_ranges = [{start, acked} | acked_ranges]
      info = check(ctx, acked_ranges)
      assert info.quarantined_files == 0

      IO.puts(
        "kill round #{round} (timers): killed after batch #{acked}, #{info.segments} segments, replayed #{info.wal_replayed_points} points"
      )

      :ok = stop_supervised(ctx.store)
      acked_ranges
    end)
  end

  test "kill -9 while compaction builds rollup tiers leaves tiers that answer as raw data does", ctx do
    # Partitions of 10 batches and tiers of one and five batches: every cold
    # flush closes partitions and builds tier files while the writer goes on,
    # and explicit compactions race the timer's.
    opts = [
      partition_duration: 10_000,
      rollups: [[resolution: 1_000], [resolution: 5_000]],
      flush_interval: 5,
      cold_after: 0,
      cold_flush_interval: 10
    ]

    then = """
    Stream.iterate(0, &(&1 + 1))
    |> Enum.each(fn b ->
      write.(b)
      if rem(b, 7) == 6, do: spawn(fn -> Tms.compact(:child) end)
    end)
    """

    port = elixir_process(writer_code(ctx.dir, {:interval, 100}, then, opts))
    acked = run_until(port, &(&1 >= 60 + :rand.uniform(100)))
    assert is_integer(acked)
    assert kill9(port) != 0
    drain(port)
    info = check(ctx, [{0, acked}], Keyword.take(opts, [:partition_duration, :rollups]))
    assert info.quarantined_files == 0
    assert tier_answers_match_raw(ctx.store, acked), "tiers differ from raw data after the crash"

    # Compaction after the restart brings every closed partition's tiers
    # up to date; they still answer as raw data does.
    {:ok, _} = Tms.compact(ctx.store)
    assert [%{files: files} | _] = Tms.info!(ctx.store).rollups
    assert files > 0
    assert tier_answers_match_raw(ctx.store, acked)
    IO.puts("killed after batch #{acked}; #{files} tier files of the finest tier")
  end

  # Every tier-answerable aggregation at a tier's step equals the same
  # aggregation computed here from the raw points (sums to rounding).
  defp tier_answers_match_raw(store, acked) do
    to = (acked + 1) * 1000 - 1
    {:ok, raw} = Tms.query_range(store, "m", %{}, 0, to)
    raw = Map.new(raw, &{&1.labels, &1.points})

    for step <- [1_000, 5_000, 10_000], agg <- [:count, :min, :max, :first, :last, :sum, :avg] do
      {:ok, result} = Tms.query_range(store, "m", %{}, 0, to, step: step, agg: agg)
      assert map_size(raw) == length(result)

      Enum.all?(result, fn %{labels: labels, points: points} ->
        expected =
          raw[labels]
          |> Enum.chunk_by(fn {ts, _} -> div(ts, step) end)
          |> Enum.map(fn [{ts, _} | _] = bucket ->
            {div(ts, step) * step, model(agg, Enum.map(bucket, &elem(&1, 1)))}
          end)

        length(points) == length(expected) and
          Enum.all?(Enum.zip(points, expected), fn {{t1, v1}, {t2, v2}} ->
            t1 == t2 and (v1 == v2 or (agg in [:sum, :avg] and abs(v1 - v2) <= 1.0e-9 * abs(v2)))
          end)
      end)
    end
    |> Enum.all?()
  end

  defp model(:count, vs), do: length(vs)
  defp model(:min, vs), do: Enum.min(vs)
  defp model(:max, vs), do: Enum.max(vs)
  defp model(:first, vs), do: hd(vs)
  defp model(:last, vs), do: List.last(vs)
  defp model(:sum, vs), do: Enum.sum(vs)
  defp model(:avg, vs), do: Enum.sum(vs) / length(vs)
end
