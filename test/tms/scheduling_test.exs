defmodule Tms.SchedulingTest do
  # No NIF may hold a normal scheduler for long. Heavy work (large labeled
  # and raw batches, queries, flushes, the housekeeping timers) runs while
  # other processes hammer the per-point paths (single writes through the
  # shards, small batches, resolves).
  #
  # Two views of the same run:
  #   * the VM's system monitor reports every process that ran for 10 ms or
  #     more without yielding; none of those reports may point into Tms.Native;
  #   * every process that calls the engine is traced: its NIF calls and
  #     returns, and when it is scheduled in and out. A NIF that ran on a
  #     normal scheduler shows as a call and its return within one slice;
  #     a dirty NIF makes the process leave its scheduler right after the
  #     call. Any slice of 10 ms or more holding a whole NIF call fails.
  # All data is generated before monitoring starts. async: false: a VM has
  # one system monitor.
  use Tms.Case, async: false
  import Bitwise

  test "no long schedule comes from a NIF call", ctx do
    store =
      start_store(ctx,
        shards: 2,
        flush_threshold: 2_000,
        flush_interval: 10,
        cold_after: 0,
        cold_flush_interval: 50
      )

    ids = List.to_tuple(for h <- 0..199, do: elem(Tms.resolve(store, "raw", %{"h" => "#{h}"}), 1))

    raw = fn n, t0 ->
      for i <- 0..(n - 1),
          into: <<>>,
          do: <<elem(ids, rem(i, 200))::little-64, t0 + i::little-signed-64, i * 0.5::little-float-64>>
    end

    labeled = fn n, t0 -> for i <- 1..n, do: {"lab", %{"h" => "#{rem(i, 300)}"}, i, t0 + i} end
    small_labeled = for r <- 1..40, do: labeled.(500, r * 1_000)
    small_raw = for r <- 1..40, do: raw.(4_096, r * 10_000)
    large_labeled = for r <- 1..3, do: labeled.(50_000, r * 1_000_000)
    large_raw = for r <- 1..3, do: raw.(400_000, r * 10_000_000)

    jobs = [
      fn -> for t <- 1..3_000, do: :ok = Tms.write(store, "one", %{"w" => "#{rem(t, 50)}"}, t, t) end,
      fn -> for t <- 1..3_000, do: :ok = Tms.write_async(store, "async", %{"w" => "#{rem(t, 50)}"}, t, t) end,
      fn -> for batch <- small_labeled, do: :ok = Tms.write_batch(store, batch) end,
      fn -> for batch <- small_raw, do: :ok = Tms.write_batch_raw(store, batch) end,
      fn -> for h <- 1..2_000, do: {:ok, _} = Tms.resolve(store, "new", %{"h" => "#{h}"}) end,
      fn -> for batch <- large_labeled, do: :ok = Tms.write_batch(store, batch) end,
      fn -> for batch <- large_raw, do: :ok = Tms.write_batch_raw(store, batch) end,
      fn -> for _ <- 1..30, do: {:ok, _} = Tms.query_range(store, "lab", %{}, 0, 1 <<< 40) end,
      fn -> for _ <- 1..20, do: :ok = Tms.flush(store) end
    ]

    tasks =
      Enum.map(jobs, fn job ->
        Task.async(fn ->
          receive do
            :go -> job.()
          end
        end)
      end)

    helpers =
      [Module.concat(store, Flusher) | for(i <- 0..1, do: Tms.Store.Shard.name(store, i))]
      |> Enum.map(&Process.whereis/1)

    traced = Enum.map(tasks, & &1.pid) ++ helpers
    :erlang.trace_pattern({Tms.Native, :_, :_}, [{:_, [], [{:return_trace}]}], [:local])

    for pid <- traced,
        do: :erlang.trace(pid, true, [:call, :running, :monotonic_timestamp, {:tracer, self()}])

    :erlang.system_monitor(self(), [{:long_schedule, 10}])

    on_exit(fn ->
      :erlang.system_monitor(:undefined)
      :erlang.trace_pattern({Tms.Native, :_, :_}, false, [:local])
    end)

    Enum.each(tasks, &send(&1.pid, :go))
    Enum.each(tasks, &Task.await(&1, 120_000))
    :erlang.system_monitor(:undefined)
    for pid <- helpers, do: :erlang.trace(pid, false, [:call, :running])

    %{long: long, calls: calls, slices: slices, blocking: blocking} = collect(%{}, new_summary())

    located =
      for {_pid, info} <- long, Enum.any?([info[:in], info[:out]], &match?({Tms.Native, _, _}, &1)), do: info

    IO.puts(
      "NIF calls traced: #{calls}; scheduler slices: #{slices}; long schedules in the VM: #{length(long)} " <>
        "(dirty NIF runs and OS preemption included); slices of 10 ms or more holding a NIF call: #{length(blocking)}"
    )

    assert calls > 5_000
    assert located == []
    assert blocking == []
  end

  defp new_summary, do: %{long: [], calls: 0, slices: 0, blocking: []}

  # Per process: when its current slice began and whether a NIF call is
  # open in it. A slice that ends holding a completed NIF call and lasted
  # 10 ms or more means that NIF held a normal scheduler.
  defp collect(state, acc) do
    receive do
      {:trace_ts, pid, :in, _mfa, ts} ->
        collect(Map.put(state, pid, {ts, nil, false}), acc)

      {:trace_ts, pid, :call, {Tms.Native, f, _}, ts} ->
        {start, _, done} = Map.get(state, pid, {ts, nil, false})
        collect(Map.put(state, pid, {start, {f, ts}, done}), %{acc | calls: acc.calls + 1})

      {:trace_ts, pid, :return_from, {Tms.Native, _, _}, _result, _ts} ->
        case Map.get(state, pid) do
          {start, {f, called}, _} -> collect(Map.put(state, pid, {start, nil, {f, called}}), acc)
          _ -> collect(state, acc)
        end

      {:trace_ts, pid, :out, _mfa, ts} ->
        acc = %{acc | slices: acc.slices + 1}

        case Map.pop(state, pid) do
          {{start, _, {f, _}}, state} ->
            ms = :erlang.convert_time_unit(ts - start, :native, :microsecond) / 1000
            acc = if ms >= 10, do: %{acc | blocking: [{f, ms} | acc.blocking]}, else: acc
            collect(state, acc)

          {_, state} ->
            collect(state, acc)
        end

      {:trace_ts, _pid, _other, _a, _b} ->
        collect(state, acc)

      {:trace_ts, _pid, _other, _a, _b, _c} ->
        collect(state, acc)

      {:monitor, pid, :long_schedule, info} ->
        collect(state, %{acc | long: [{pid, info} | acc.long]})
    after
      300 -> acc
    end
  end
end
