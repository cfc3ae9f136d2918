defmodule TmsTest do
  use Tms.Case, async: true

  @far 4_000_000_000_000

  defp points(store, metric, matchers) do
    {:ok, result} = Tms.query_range(store, metric, matchers, 0, @far)
    Enum.map(result, &{&1.labels, &1.points})
  end

  describe "write and read" do
    test "labeled, raw and single writes come back sorted by labels then time", ctx do
      store = start_store(ctx)

      :ok =
        Tms.write_batch(store, [
          {"cpu", %{"host" => "b"}, 2, 2_000},
          {"cpu", %{"host" => "a"}, 1.5, 3_000},
          {"cpu", [host: "a"], 0.5, 1_000}
        ])

      {:ok, id} = Tms.resolve(store, "cpu", %{host: "a"})
      :ok = Tms.write_batch_raw(store, <<id::little-64, 2_000::little-signed-64, 9.0::little-float-64>>)
      :ok = Tms.write(store, "cpu", %{"host" => "c"}, 7, 500)

      assert points(store, "cpu", %{}) == [
               {%{"host" => "a"}, [{1_000, 0.5}, {2_000, 9.0}, {3_000, 1.5}]},
               {%{"host" => "b"}, [{2_000, 2.0}]},
               {%{"host" => "c"}, [{500, 7.0}]}
             ]

      assert points(store, "cpu", %{"host" => "b"}) == [{%{"host" => "b"}, [{2_000, 2.0}]}]
      assert {:ok, [%{points: [{2_000, 9.0}]}]} = Tms.query_range(store, "cpu", [host: "a"], 1_500, 2_000)
      assert {:ok, []} = Tms.query_range(store, "mem", %{}, 0, @far)
      assert {:ok, [%{"host" => "a"}, %{"host" => "b"}, %{"host" => "c"}]} = Tms.series(store, "cpu")
    end

    test "entries sharing one labels term, or equal ones built apart, map to the right series", ctx do
      store = start_store(ctx)
      shared = %{"host" => "a", "dc" => "x"}
      built_apart = Map.new([{"dc", "x"}, {"host", "a"}])
      entries = for t <- 1..300, metric <- ["m1", "m2"], do: {metric, shared, t, t}

      :ok =
        Tms.write_batch(
          store,
          entries ++ [{"m1", built_apart, -1, 301}, {"m1", [dc: "x", host: "a"], -2, 302}]
        )

      assert %{series: 2} = Tms.info!(store)
      {:ok, [%{points: m1}]} = Tms.query_range(store, "m1", shared, 0, 1_000)
      assert length(m1) == 302
      assert Enum.take(m1, -2) == [{301, -1.0}, {302, -2.0}]
    end

    test "a missing timestamp means now in the store's time unit", ctx do
      store = start_store(ctx, time_unit: :second)
      before = System.os_time(:second)
      :ok = Tms.write(store, "up", %{}, 1)
      [{_, [{ts, 1.0}]}] = points(store, "up", %{})
      assert ts >= before and ts <= System.os_time(:second)
    end

    test "the later write of a timestamp wins in buffers, segments and after restart", ctx do
      store = start_store(ctx)
      :ok = Tms.write_batch(store, [{"g", %{}, 1, 10}, {"g", %{}, 2, 10}])
      assert points(store, "g", %{}) == [{%{}, [{10, 2.0}]}]
      :ok = Tms.flush(store)
      :ok = Tms.write(store, "g", %{}, 3, 10)
      assert points(store, "g", %{}) == [{%{}, [{10, 3.0}]}]
      store = restart_store(ctx)
      assert points(store, "g", %{}) == [{%{}, [{10, 3.0}]}]
      :ok = Tms.write(store, "g", %{}, 4, 10)
      :ok = Tms.flush(store)
      store = restart_store(ctx)
      assert points(store, "g", %{}) == [{%{}, [{10, 4.0}]}]
    end

    test "special floats round-trip bit-exact through flush and restart", ctx do
      store = start_store(ctx)
      {:ok, id} = Tms.resolve(store, "s", %{"k" => "raw"})
      nan_payload = 0x7FF8_0000_DEAD_BEEF
      neg_zero = <<0x8000_0000_0000_0000::64>>

      raw =
        <<id::little-64, 1::little-signed-64, nan_payload::little-64, id::little-64, 2::little-signed-64,
          neg_zero::binary-size(8)-little, id::little-64, 3::little-signed-64,
          0x7FF0_0000_0000_0000::little-64>>

      # neg_zero is big-endian bits; all zero bytes but the sign byte, so reverse it.
      raw = String.replace(raw, neg_zero, <<0, 0, 0, 0, 0, 0, 0, 0x80>>)
      :ok = Tms.write_batch_raw(store, raw)

      :ok =
        Tms.write_batch(store, [
          {"s", %{"k" => "t"}, :nan, 1},
          {"s", %{"k" => "t"}, :infinity, 2},
          {"s", %{"k" => "t"}, :neg_infinity, 3},
          {"s", %{"k" => "t"}, -0.0, 4}
        ])

      check = fn store ->
        {:ok, [raw_series, term_series]} = Tms.query_range(store, "s", %{}, 0, 10)
        assert [{1, :nan}, {2, z}, {3, :infinity}] = raw_series.points
        assert <<z::float>> == <<0x8000_0000_0000_0000::64>>
        assert [{1, :nan}, {2, :infinity}, {3, :neg_infinity}, {4, z2}] = term_series.points
        assert <<z2::float>> == <<0x8000_0000_0000_0000::64>>
      end

      check.(store)
      :ok = Tms.flush(store)
      check.(store)
      check.(restart_store(ctx))
    end
  end

  describe "restart" do
    test "flushed points, WAL points and the registry all come back", ctx do
      store = start_store(ctx)
      entries = for h <- 1..20, t <- 1..50, do: {"m", %{"host" => "h#{h}"}, t * 1.0, t * 1_000}
      :ok = Tms.write_batch(store, entries)
      :ok = Tms.flush(store)
      :ok = Tms.write_batch(store, [{"m", %{"host" => "h1"}, 99, 99_000}, {"n", %{"x" => "y"}, 1, 1}])
      before = points(store, "m", %{}) ++ points(store, "n", %{})
      store = restart_store(ctx)
      assert points(store, "m", %{}) ++ points(store, "n", %{}) == before
      assert %{series: 21} = Tms.info!(store)
      assert {:ok, 20} = Tms.resolve(store, "n", %{"x" => "y"})
    end

    test "info reports integers", ctx do
      store = start_store(ctx)
      :ok = Tms.write_batch(store, [{"m", %{}, 1, 1}, {"m", %{}, 2, 2}])
      assert %{series: 1, buffered_points: 2, segments: 0, flushes: 0} = Tms.info!(store)
      :ok = Tms.flush(store)
      info = Tms.info!(store)
      assert %{buffered_points: 0, segments: 1, chunks: 1, flushes: 1} = info

      for key <- [:segment_bytes, :wal_bytes, :cache_hits, :cache_misses, :last_flush_unix_ms] do
        assert is_integer(info[key]) and info[key] >= 0, "#{key}: #{inspect(info[key])}"
      end
    end
  end

  describe "bad input gets {:error, %Tms.Error{}}" do
    setup ctx, do: %{store: start_store(ctx)}

    defp invalid?(result, pattern) do
      assert {:error, %Tms.Error{kind: :invalid_argument, message: message}} = result
      assert message =~ pattern
    end

    test "raw binaries", %{store: store} do
      invalid?(Tms.write_batch_raw(store, <<0::size(25)-unit(8)>>), "multiple of 24")
      invalid?(Tms.write_batch_raw(store, :nope), "must be a binary")

      assert {:error, %Tms.Error{kind: :series_not_found, details: %{id: 42, entry: 0}}} =
               Tms.write_batch_raw(store, <<42::little-64, 1::little-signed-64, 1.0::little-float-64>>)
    end

    test "entries", %{store: store} do
      invalid?(Tms.write_batch(store, [{"m", %{}, "1"}]), "value must be a number")
      invalid?(Tms.write_batch(store, [{"m", %{}, :nan_ish}]), "value must be a number")
      invalid?(Tms.write_batch(store, [{"m", %{}, 1, 1.5}]), "timestamp must be an integer")
      invalid?(Tms.write_batch(store, [{"m", %{}, 1, Bitwise.bsl(1, 70)}]), "timestamp does not fit")
      invalid?(Tms.write_batch(store, [{"m", %{}, 1, 300_000_000_000_000}]), "outside")
      invalid?(Tms.write_batch(store, [{"", %{}, 1}]), "metric name must not be empty")
      invalid?(Tms.write_batch(store, [{:m, %{}, 1}]), "metric name must be a string")
      invalid?(Tms.write_batch(store, [{"m", %{"k" => 1}, 1}]), "must be a string")
      invalid?(Tms.write_batch(store, [{"m", %{"k" => <<0xFF, 0xFE>>}, 1}]), "not valid UTF-8")
      invalid?(Tms.write_batch(store, [{<<0xC3>>, %{}, 1}]), "not valid UTF-8")
      invalid?(Tms.write_batch(store, [{"m", %{"k" => String.duplicate("v", 1_000_000)}, 1}]), "4096 bytes")
      invalid?(Tms.write_batch(store, [{"m", [{"k", "a"}, {"k", "b"}], 1}]), "given twice")
      invalid?(Tms.write_batch(store, [{"m", "k=v", 1}]), "map or a keyword list")
      invalid?(Tms.write_batch(store, [{"m", %{}}]), "expected {metric, labels, value}")
      invalid?(Tms.write_batch(store, :not_a_list), "must be a list")
      many = Map.new(1..65, &{"l#{&1}", "v"})
      invalid?(Tms.write_batch(store, [{"m", many, 1}]), "65 labels")
    end

    test "batches over the size limit", %{store: store} do
      limit = 4_194_304
      invalid?(Tms.write_batch(store, List.duplicate({"m", %{}, 1, 1}, limit + 1)), "at most #{limit}")

      invalid?(
        Tms.write_batch_raw(store, :binary.copy(<<0::size(24)-unit(8)>>, limit + 1)),
        "at most #{limit}"
      )

      assert %{buffered_points: 0} = Tms.info!(store)
    end

    test "the memory ceiling pushes back with :overloaded, and a flush relieves it", ctx do
      store = restart_store(ctx, max_buffered_points: 25_000, flush_interval: 3_600_000)
      {:ok, id} = Tms.resolve(store, "m", %{})

      batch = fn r ->
        for i <- 1..10_000,
            into: <<>>,
            do: <<id::little-64, r * 10_000 + i::little-signed-64, 1.0::little-float-64>>
      end

      :ok = Tms.write_batch_raw(store, batch.(0))
      :ok = Tms.write_batch_raw(store, batch.(1))

      assert {:error, %Tms.Error{kind: :overloaded, details: %{buffered: 20_000, limit: 25_000}}} =
               Tms.write_batch_raw(store, batch.(2))

      assert %{buffered_points: 20_000} = Tms.info!(store)
      :ok = Tms.flush(store)
      :ok = Tms.write_batch_raw(store, batch.(2))
      {:ok, [%{points: points}]} = Tms.query_range(store, "m", %{}, 0, 1_000_000)
      assert length(points) == 30_000
    end

    test "a bad entry rejects the whole batch", %{store: store} do
      invalid?(Tms.write_batch(store, [{"ok", %{}, 1, 1}, {"ok", %{}, "bad", 2}]), "entry 1")
      assert {:ok, []} = Tms.query_range(store, "ok", %{}, 0, @far)
      assert %{series: 0, buffered_points: 0} = Tms.info!(store)
    end

    test "queries", %{store: store} do
      invalid?(Tms.query_range(store, "m", %{}, 10, 1), "after")
      invalid?(Tms.query_range(store, "m", %{}, 1.0, 2), "must be integers")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, colour: :red), "unknown query options")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, step: 5), "step needs an agg")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, agg: :avg), "agg needs a step")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, step: 0, agg: :avg), "step must be positive")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, step: 5, agg: :median), "agg must be one of")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, group_by: ["a"]), "group_by needs a step")
      invalid?(Tms.query_range(store, "m", [{"a", :regex, "("}], 1, 2), "bad regex")
      invalid?(Tms.query_range(store, "m", [{"a", :like, "x"}], 1, 2), "unknown matcher operator")
      invalid?(Tms.query_range(store, "m", %{}, 1, 2, format: :csv), "format must be")
    end

    test "unknown store names and stopped stores", ctx do
      assert {:error, %Tms.Error{kind: :no_store}} = Tms.write(:no_such_store, "m", %{}, 1)
      assert {:error, %Tms.Error{kind: :no_store}} = Tms.info(:no_such_store)
      :ok = stop_supervised(ctx.store)
      assert {:error, %Tms.Error{kind: :no_store}} = Tms.query_range(ctx.store, "m", %{}, 0, 1)
    end

    test "a second store on the same data_dir", ctx do
      other = [name: :"#{ctx.store}_2", data_dir: ctx.dir]
      assert %Tms.Error{kind: :locked} = start_error(other)
    end
  end

  describe "options" do
    test "are validated with clear errors", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:colour\]/, fn ->
        Tms.child_spec(name: :x, data_dir: ctx.dir, colour: :red)
      end

      assert_raise ArgumentError, ~r/:data_dir is required/, fn -> Tms.child_spec(name: :x) end
      assert_raise ArgumentError, ~r/:data_dir must be/, fn -> Tms.child_spec(name: :x, data_dir: 42) end

      assert_raise ArgumentError, ~r/:time_unit must be one of/, fn ->
        Tms.child_spec(name: :x, data_dir: ctx.dir, time_unit: :fortnight)
      end

      assert_raise ArgumentError, ~r/:wal_sync must be/, fn ->
        Tms.child_spec(name: :x, data_dir: ctx.dir, wal_sync: {:interval, 0})
      end
    end

    test "a data_dir that cannot be created is an io error", ctx do
      file = Path.join(ctx.dir, "a_file")
      File.write!(file, "")
      opts = [name: ctx.store, data_dir: Path.join(file, "store")]
      assert %Tms.Error{kind: :io, details: %{errno: :enotdir}} = start_error(opts)
    end
  end
end
