defmodule Tms.StoreTest do
  use Tms.Case, async: true
  @moduletag :capture_log

  import Bitwise
  @far 1 <<< 62

  defp all_points(store, metric) do
    {:ok, result} = Tms.query_range(store, metric, %{}, -@far, @far)
    Map.new(result, &{&1.labels, &1.points})
  end

  describe "ingestion shards" do
    test "single writes from many processes all land, each acknowledged once in the engine", ctx do
      store = start_store(ctx, shards: 3, batch_size: 50)

      1..40
      |> Task.async_stream(
        fn w ->
          for t <- 1..100 do
            :ok =
              Tms.write(
                store,
                "req",
                %{"worker" => "w#{rem(w, 10)}", "kind" => "#{rem(w, 4)}"},
                t,
                w * 1000 + t
              )

            # Acknowledged means queryable: the point is in the engine.
            if t == 100 do
              {:ok, [%{points: points}]} =
                Tms.query_range(
                  store,
                  "req",
                  %{"worker" => "w#{rem(w, 10)}", "kind" => "#{rem(w, 4)}"},
                  w * 1000 + t,
                  w * 1000 + t
                )

              assert points == [{w * 1000 + t, t * 1.0}]
            end
          end
        end,
        max_concurrency: 40
      )
      |> Stream.run()

      points = all_points(store, "req")
      assert points |> Map.values() |> Enum.map(&length/1) |> Enum.sum() == 4000
      assert %{shards: 3, series: 20} = Tms.info!(store)
    end

    test "a bad point fails only its own caller", ctx do
      store = start_store(ctx, shards: 1)
      good = Task.async(fn -> Tms.write(store, "m", %{"a" => "1"}, 1.0, 1) end)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{"a" => 1}, 1.0, 1)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{}, "x", 1)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{}, 1.0, 1 <<< 64)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{}, 1.0, 1 <<< 60)
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write(store, "m", %{}, 1 <<< 1100, 1)
      assert :ok = Task.await(good)
      assert :ok = Tms.write(store, "m", %{"a" => "1"}, :nan, 2)
      assert %{%{"a" => "1"} => [{1, 1.0}, {2, :nan}]} = all_points(store, "m")
    end

    test "write_async is bounded per shard and answers :overloaded past the bound", ctx do
      store = start_store(ctx, shards: 1, max_in_flight: 3)
      shard = Tms.Store.Shard.name(store, 0)
      :ok = :sys.suspend(shard)
      for t <- 1..3, do: assert(:ok = Tms.write_async(store, "a", %{}, t, t))
      assert {:error, %Tms.Error{kind: :overloaded}} = Tms.write_async(store, "a", %{}, 4, 4)
      assert %{async_in_flight: 3} = Tms.info!(store)
      :ok = :sys.resume(shard)
      eventually(fn -> Tms.info!(store).async_in_flight == 0 end)
      assert :ok = Tms.write_async(store, "a", %{}, 4, 4)
      :ok = Tms.write(store, "a", %{}, 5, 5)
      assert %{%{} => [{1, 1.0}, {2, 2.0}, {3, 3.0}, {4, 4.0}, {5, 5.0}]} = all_points(store, "a")
      :ok = Tms.write_async(store, "a", %{"bad" => 1}, 6, 6)
      eventually(fn -> Tms.info!(store).async_write_errors == 1 end)
    end

    test "stopping the store writes what the shards hold and leaves nothing to replay", ctx do
      store = start_store(ctx, shards: 2, batch_ms: 60_000, batch_size: 1_000_000)
      for t <- 1..500, do: :ok = Tms.write_async(store, "s", %{"h" => "#{rem(t, 7)}"}, t, t)
      :ok = Tms.write(store, "s", %{"h" => "sync"}, 1, 1)
      store = restart_store(ctx)
      info = Tms.info!(store)
      assert info.wal_replayed_points == 0
      assert info.buffered_points == 0
      assert all_points(store, "s") |> Map.values() |> Enum.map(&length/1) |> Enum.sum() == 501
    end
  end

  describe "housekeeping timers" do
    test "pending flush, cold flush and compaction run on their own", ctx do
      store =
        start_store(ctx,
          flush_threshold: 10,
          flush_interval: 20,
          cold_after: 0,
          cold_flush_interval: 30
        )

      for round <- 0..4 do
        :ok = Tms.write_batch(store, for(t <- 1..25, do: {"c", %{"r" => "x"}, t, round * 100 + t}))
        eventually(fn -> Tms.info!(store).buffered_points == 0 end)
      end

      # Compaction merges the partition's segments into one.
      eventually(fn -> Tms.info!(store).segments == 1 end)
      assert %{%{"r" => "x"} => points} = all_points(store, "c")
      assert length(points) == 125
    end

    test "retention deletes what is older than the window", ctx do
      store = start_store(ctx, retention: 60_000, retention_interval: 20, partition_duration: 10_000)
      now = System.os_time(:millisecond)
      :ok = Tms.write_batch(store, [{"r", %{}, 1, now - 3_600_000}, {"r", %{}, 2, now}])
      :ok = Tms.flush(store)
      eventually(fn -> all_points(store, "r") == %{%{} => [{now, 2.0}]} end)
      eventually(fn -> Tms.info!(store).segments == 1 end)
    end
  end

  test "delete_before removes old segments and reports what it did", ctx do
    store = start_store(ctx, partition_duration: 1_000)
    :ok = Tms.write_batch(store, for(t <- [10, 1_010, 2_010], do: {"d", %{}, t, t}))
    :ok = Tms.flush(store)
    assert {:ok, %{segments_removed: 2, unremoved: []}} = Tms.delete_before(store, 2_000)
    assert %{%{} => [{2_010, 2_010.0}]} = all_points(store, "d")
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.delete_before(store, :yesterday)
  end

  test "several named stores run side by side in one VM", ctx do
    a = start_store(ctx)
    b_dir = ctx.dir <> "_b"
    on_exit(fn -> File.rm_rf!(b_dir) end)
    b = :"#{ctx.store}_b"
    {:ok, _} = start_supervised({Tms, name: b, data_dir: b_dir, wal_sync: :never}, id: b)
    :ok = Tms.write(a, "m", %{}, 1, 1)
    :ok = Tms.write(b, "m", %{}, 2, 1)
    assert %{%{} => [{1, 1.0}]} = all_points(a, "m")
    assert %{%{} => [{1, 2.0}]} = all_points(b, "m")
    :ok = Tms.stop(b)
    assert {:error, %Tms.Error{kind: :no_store}} = Tms.write(b, "m", %{}, 1, 1)
    assert :ok = Tms.write(a, "m", %{}, 1, 2)
  end
end
