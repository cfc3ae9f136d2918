defmodule Tms.RollupsTest do
  # Rollup tiers through the public API: options, building by compaction,
  # answers equal to raw ones, answers after raw data is gone, the refusal of
  # what a tier cannot answer, and info. The engine's model test
  # (native/tms_engine/tests/rollups.rs) compares tiers with raw data on
  # random points, late writes, restarts and deletions.
  use Tms.Case, async: true

  @minute 60_000
  @hour 60 * @minute
  @day 24 * @hour
  @tiers [[resolution: 5 * @minute, retention: 90 * @day], [resolution: @hour]]

  # Three days of a counter and a gauge every 10 s, ending two days ago.
  defp load(store) do
    start = div(System.os_time(:millisecond), @day) * @day - 5 * @day

    entries =
      for i <- 0..(3 * 8640 - 1),
          {metric, v} <- [{"requests_total", i * 3}, {"temperature", rem(i * 7, 41)}] do
        {metric, %{"host" => "a"}, v * 1.0, start + i * 10_000 + rem(i, 3)}
      end

    entries |> Enum.chunk_every(50_000) |> Enum.each(&(:ok = Tms.write_batch(store, &1)))
    {:ok, _} = Tms.compact(store)
    start
  end

  test "tiers answer as raw data does, and alone once it is gone", ctx do
    store = start_store(ctx, rollups: @tiers)
    start = load(store)
    {:ok, info} = Tms.info(store)

    assert [%{resolution: 300_000, files: 3, intervals: 1728}, %{resolution: 3_600_000, files: 3}] =
             info.rollups

    from = start + 30 * @minute
    to = start + 3 * @day - 1

    answers = fn ->
      for metric <- ["requests_total", "temperature"],
          agg <- [:avg, :min, :max, :sum, :count, :first, :last, :rate, :increase],
          step <- [5 * @minute, @hour, 6 * @hour] do
        {:ok, result} = Tms.query_range(store, metric, %{}, from, to, step: step, agg: agg)
        result
      end
    end

    promql = fn ->
      for q <- [
            "rate(requests_total[1h])",
            "max_over_time(temperature[5m])",
            "sum(increase(requests_total[6h]))"
          ] do
        {:ok, %{result: result}} = Tms.promql_range(store, q, start + @day, start + 3 * @day, @hour)
        {q, result}
      end
    end

    with_tiers = answers.()
    promql_before = promql.()
    assert Enum.all?(promql_before, fn {_, result} -> result != [] end)
    {:ok, raw_store_answers} = raw_answers(ctx, from, to)
    assert with_tiers == raw_store_answers

    # Raw points go; tiers still answer, the same.
    {:ok, _} = Tms.delete_before(store, start + 3 * @day, force: true)
    assert {:ok, []} = Tms.query_range(store, "temperature", %{}, from, to)
    assert answers.() == with_tiers
    assert promql.() == promql_before

    # PromQL a tier cannot answer is refused there, with the reason.
    assert {:error, %Tms.Error{kind: :execution, message: message}} =
             Tms.promql_range(store, "irate(requests_total[5m])", start + @day, start + 2 * @day, @hour)

    assert message =~ "rollup"

    # What no tier holds exactly is refused, not answered in part.
    assert {:error, %Tms.Error{kind: :invalid_argument, message: message}} =
             Tms.query_range(store, "temperature", %{}, from, to, step: 7 * @minute, agg: :avg)

    assert message =~ "rollup"
  end

  # The same points in a store without tiers, queried the same way.
  defp raw_answers(ctx, from, to) do
    dir = Path.join(ctx.dir, "raw")
    name = :"#{ctx.store}_raw"
    {:ok, _} = start_supervised({Tms, name: name, data_dir: dir, wal_sync: :never}, id: name)
    load(name)

    {:ok,
     for metric <- ["requests_total", "temperature"],
         agg <- [:avg, :min, :max, :sum, :count, :first, :last, :rate, :increase],
         step <- [5 * @minute, @hour, 6 * @hour] do
       {:ok, result} = Tms.query_range(name, metric, %{}, from, to, step: step, agg: agg)
       result
     end}
  end

  test "bad tiers are refused with the reason", ctx do
    assert_raise ArgumentError, ~r/rollups/, fn ->
      Tms.Options.validate!(name: :x, data_dir: "d", rollups: [[step: 5]])
    end

    error =
      start_error(
        name: ctx.store,
        data_dir: ctx.dir,
        rollups: [[resolution: @hour], [resolution: 5 * @minute]]
      )

    assert error.kind == :invalid_argument
    assert error.message =~ "multiple of the one before"

    error = start_error(name: ctx.store, data_dir: ctx.dir, rollups: [[resolution: 7 * @minute]])
    assert error.message =~ "divide the partition duration"
  end
end
