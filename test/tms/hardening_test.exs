defmodule Tms.HardeningTest do
  # What an adversarial pass over the public API found (issue 10): each test
  # failed before its fix.
  use Tms.Case, async: true

  @moduletag :capture_log

  @ts 1_700_000_000_000

  defp invalid?(result, text) do
    assert {:error, %Tms.Error{kind: :invalid_argument, message: message}} = result
    assert message =~ text
  end

  describe "improper lists" do
    test "every NIF argument that takes a list answers an error, never a panic", ctx do
      store = start_store(ctx)
      :ok = Tms.write_batch(store, [{"m", %{"a" => "b"}, 1.0, @ts}])

      invalid?(Tms.write_batch(store, [{"m", %{"a" => "b"}, 1.0, @ts} | :tail]), "proper list")
      invalid?(Tms.write_batch(store, [{"m", [{"a", "b"} | :x], 1.0, @ts}]), "proper list")
      invalid?(Tms.resolve(store, "m", [{"a", "b"} | :x]), "proper list")
      invalid?(Tms.query_range(store, "m", [{"a", "b"} | :x], 0, @ts), "proper list")
      invalid?(Tms.query_range(store, "m", [{"a", :eq, "b"} | :x], 0, @ts), "proper list")

      invalid?(
        Tms.query_range(store, "m", %{}, 0, @ts, step: 1_000, agg: :avg, group_by: ["a" | "b"]),
        "proper list"
      )

      invalid?(Tms.series(store, "m", [{"a", "b"} | :x]), "proper list")
      # Nothing was written by the refused calls, and the store still answers.
      assert {:ok, [%{points: [{@ts, 1.0}]}]} = Tms.query_range(store, "m", %{}, 0, @ts)
    end

    test "a shard answers bad points and counts what it dropped, never crashing", ctx do
      store = start_store(ctx, shards: 1, max_in_flight: 20)
      shard = Process.whereis(Tms.Store.Shard.name(store, 0))

      for _ <- 1..25 do
        assert {:error, %Tms.Error{}} = Tms.write(store, "m", [{"a", "b"} | :x], 1.0, @ts)
      end

      for _ <- 1..25 do
        assert :ok = Tms.write_async(store, "m", [{"a", "b"} | :x], 1.0, @ts)
        eventually(fn -> Tms.info!(store).async_in_flight == 0 end)
      end

      assert Process.whereis(Tms.Store.Shard.name(store, 0)) == shard
      assert %{async_in_flight: 0, async_write_errors: 25} = Tms.info!(store)
      assert :ok = Tms.write_async(store, "m", %{"a" => "b"}, 2.0, @ts)
      assert :ok = Tms.write(store, "m", %{"a" => "b"}, 3.0, @ts + 1)
      assert {:ok, [%{points: [{@ts, 2.0}, {_, 3.0}]}]} = Tms.query_range(store, "m", %{}, 0, @ts + 1)
    end

    test "points queued at a shard when the store stops are written, not lost", ctx do
      store = start_store(ctx, shards: 1, batch_ms: 60_000, batch_size: 1_000_000)
      for i <- 1..500, do: :ok = Tms.write_async(store, "m", %{"a" => "b"}, i, @ts + i)
      store = restart_store(ctx)
      assert {:ok, [%{points: points}]} = Tms.query_range(store, "m", %{}, 0, @ts + 1_000)
      assert length(points) == 500
    end
  end

  describe "the retention cutoff" do
    test "is validated like a timestamp and refused past the data and the clock", ctx do
      store = start_store(ctx)
      :ok = Tms.write_batch(store, [{"m", %{}, 1.0, @ts}])
      invalid?(Tms.delete_before(store, 9_223_372_036_854_775_807), "outside the timestamp range")
      # A nanosecond cutoff on a millisecond store.
      invalid?(Tms.delete_before(store, System.os_time(:nanosecond)), "outside the timestamp range")
      invalid?(Tms.delete_before(store, System.os_time(:millisecond) + 86_400_000), "force: true")
      invalid?(Tms.delete_before(store, @ts, colour: :red), "unknown delete_before options")
      assert {:ok, [%{points: [{@ts, 1.0}]}]} = Tms.query_range(store, "m", %{}, 0, @ts)
      :ok = Tms.write_batch(store, [{"m", %{}, 2.0, @ts + 1}])
    end

    test "a write before it is an error, also after a restart", ctx do
      store = start_store(ctx)
      assert {:ok, _} = Tms.delete_before(store, @ts)
      invalid?(Tms.write_batch(store, [{"m", %{}, 1.0, @ts - 1}]), "retention cutoff")
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{}, 1.0, @ts - 1)
      :ok = Tms.write_batch(store, [{"m", %{}, 1.0, @ts}])
      store = restart_store(ctx)
      invalid?(Tms.write_batch(store, [{"m", %{}, 1.0, @ts - 1}]), "retention cutoff")
      assert {:ok, [%{points: [{@ts, 1.0}]}]} = Tms.query_range(store, "m", %{}, 0, @ts)
    end

    test "a late point sent through a shard fails alone, not the batch it shares", ctx do
      store = start_store(ctx, shards: 1, batch_ms: 50, batch_size: 1_000)
      assert {:ok, _} = Tms.delete_before(store, @ts)
      late = Task.async(fn -> Tms.write(store, "m", %{}, 1.0, @ts - 1) end)
      on_time = Task.async(fn -> Tms.write(store, "m", %{}, 2.0, @ts + 1) end)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Task.await(late)
      assert :ok = Task.await(on_time)
      # The cutoff is known to a store's shards after a restart too.
      store = restart_store(ctx, shards: 1)
      assert {:error, %Tms.Error{message: message}} = Tms.write(store, "m", %{}, 1.0, @ts - 1)
      assert message =~ "retention cutoff"
      assert %{retention_cutoff: @ts} = Tms.info!(store)
    end

    test "with force, a cutoff in the future is accepted", ctx do
      store = start_store(ctx)
      future = System.os_time(:millisecond) + 86_400_000
      assert {:ok, _} = Tms.delete_before(store, future, force: true)
      invalid?(Tms.write_batch(store, [{"m", %{}, 1.0, future - 1}]), "retention cutoff")
    end
  end

  describe "smaller things" do
    test "a batch larger than max_buffered_points is invalid, not overloaded", ctx do
      store = start_store(ctx, max_buffered_points: 10)
      entries = for i <- 1..11, do: {"m", %{}, 1.0, @ts + i}
      invalid?(Tms.write_batch(store, entries), "can never fit")
    end

    test "stopping a stopped store answers an error", ctx do
      {:ok, _} = Tms.start_link(name: ctx.store, data_dir: ctx.dir)
      assert :ok = Tms.stop(ctx.store)
      assert {:error, %Tms.Error{kind: :no_store}} = Tms.stop(ctx.store)
    end

    test "name: nil is refused", ctx do
      assert_raise ArgumentError, ~r/:name must be an atom other than nil/, fn ->
        Tms.child_spec(name: nil, data_dir: ctx.dir)
      end
    end

    test "series past max_series get :cardinality_limit; existing ones keep working", ctx do
      store = start_store(ctx, max_series: 2)
      :ok = Tms.write_batch(store, [{"m", %{"h" => "1"}, 1.0, @ts}, {"m", %{"h" => "2"}, 1.0, @ts}])

      assert {:error, %Tms.Error{kind: :cardinality_limit, details: %{limit: 2}}} =
               Tms.write_batch(store, [{"m", %{"h" => "3"}, 1.0, @ts}])

      :ok = Tms.write_batch(store, [{"m", %{"h" => "1"}, 2.0, @ts + 1}])
      assert {:error, %Tms.Error{kind: :cardinality_limit}} = Tms.write(store, "m", %{"h" => "4"}, 1.0, @ts)
      assert %{series: 2, max_series: 2} = Tms.info!(store)
    end

    test "a batch needing more new series than max_series allows creates none", ctx do
      store = start_store(ctx, max_series: 2)
      :ok = Tms.write_batch(store, [{"m", %{"h" => "1"}, 1.0, @ts}])

      assert {:error, %Tms.Error{kind: :cardinality_limit}} =
               Tms.write_batch(store, [{"m", %{"h" => "2"}, 1.0, @ts}, {"m", %{"h" => "3"}, 1.0, @ts}])

      assert %{series: 1} = Tms.info!(store)
      assert {:ok, %{series_created: 1}} = Tms.import(store, :prometheus_text, "m{h=\"2\"} 1\n")
    end
  end
end
