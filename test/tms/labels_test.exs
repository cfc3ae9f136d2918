defmodule Tms.LabelsTest do
  # Prometheus' label rules on every write path and in matchers: an empty
  # value is no label, and __name__ is the metric.
  use Tms.Case, async: true

  @ts 1_700_000_000_000

  test "a label with an empty value is the same as no label, on every write path", ctx do
    store = start_store(ctx)
    {:ok, id} = Tms.resolve(store, "m", %{"a" => "x"})
    assert {:ok, ^id} = Tms.resolve(store, "m", %{"a" => "x", "b" => ""})
    assert {:ok, ^id} = Tms.resolve(store, "m", [{"b", ""}, {"a", "x"}, {:c, ""}])

    :ok = Tms.write_batch(store, [{"m", %{"a" => "x", "b" => ""}, 1.0, @ts}])
    :ok = Tms.write_batch(store, [{"m", [a: "x", duplex: ""], 2.0, @ts + 1}])
    :ok = Tms.write(store, "m", %{"a" => "x", "ifalias" => ""}, 3.0, @ts + 2)
    :ok = Tms.write_batch_raw(store, <<id::little-64, @ts + 3::little-signed-64, 4.0::little-float-64>>)

    assert {:ok, [%{labels: labels, points: points}]} = Tms.query_range(store, "m", %{}, 0, @ts + 10)
    assert labels == %{"a" => "x"}
    assert Enum.map(points, &elem(&1, 1)) == [1.0, 2.0, 3.0, 4.0]
    assert %{series: 1} = Tms.info!(store)
    # Never stored: the label is not there after a restart either.
    store = restart_store(ctx)
    assert {:ok, [%{"a" => "x"}]} = Tms.series(store, "m")
  end

  test "a labels map reused across entries, with an empty value, keeps the fast path right", ctx do
    store = start_store(ctx)
    shared = %{"host" => "h", "model" => ""}
    :ok = Tms.write_batch(store, for(t <- 1..3, do: {"m", shared, t, @ts + t}))
    :ok = Tms.write_batch(store, for(t <- 4..6, do: {"m", shared, t, @ts + t}))
    :ok = Tms.write_batch(store, [{"m", %{"host" => "h", "model" => "x"}, 7, @ts + 7}])
    assert {:ok, [a, b]} = Tms.query_range(store, "m", %{}, 0, @ts + 10)
    assert {a.labels, length(a.points)} == {%{"host" => "h"}, 6}
    assert {b.labels, length(b.points)} == {%{"host" => "h", "model" => "x"}, 1}
  end

  test "matchers: = \"\" selects series without the label, != \"\" those with it", ctx do
    store = start_store(ctx)

    :ok =
      Tms.write_batch(store, [
        {"m", %{"a" => "1", "b" => ""}, 1.0, @ts},
        {"m", %{"a" => "2", "b" => "y"}, 1.0, @ts}
      ])

    labels = fn matchers ->
      {:ok, series} = Tms.series(store, "m", matchers)
      Enum.map(series, & &1["a"])
    end

    assert labels.([{"b", :eq, ""}]) == ["1"]
    assert labels.([{"b", :neq, ""}]) == ["2"]
    assert labels.([{"b", :regex, "y|"}]) == ["1", "2"]
    assert labels.([{"b", :not_regex, ""}]) == ["2"]
  end

  test "__name__ in write_batch labels is an error that says where the metric goes", ctx do
    store = start_store(ctx)

    assert {:error, %Tms.Error{kind: :invalid_argument, message: message}} =
             Tms.write_batch(store, [{"m", %{"__name__" => "other"}, 1.0, @ts}])

    assert message =~ "__name__ is the metric name"
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.resolve(store, "m", %{"__name__" => "m"})
  end

  test "label names are any UTF-8 of 1 to 256 bytes", ctx do
    store = start_store(ctx)

    :ok =
      Tms.write_batch(store, [{"m", %{"ünïcødé.name-1" => "v", String.duplicate("n", 256) => "v"}, 1.0, @ts}])

    assert {:error, %Tms.Error{kind: :invalid_argument}} =
             Tms.write_batch(store, [{"m", %{String.duplicate("n", 257) => "v"}, 1.0, @ts}])

    assert {:error, %Tms.Error{kind: :invalid_argument}} =
             Tms.write_batch(store, [{"m", %{"" => "v"}, 1.0, @ts}])
  end
end
