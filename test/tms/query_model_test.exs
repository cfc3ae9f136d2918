defmodule Tms.QueryModelTest do
  # Random series and points (duplicates, out-of-order, NaN), random
  # flushes, compactions and restarts between writes; after every step,
  # random queries (raw, every aggregation, group_by, every matcher kind)
  # are compared with the same computation done in plain Elixir over a
  # model of what was written. Seeds are fixed so a failure replays.
  use Tms.Case, async: true

  @hosts ~w(h0 h1 h2 h3)
  @dcs ~w(eu-1 eu-2 us-1)
  @aggs [:avg, :min, :max, :sum, :count, :first, :last, :rate, :increase]

  for seed <- [11, 22, 33, 44, 55] do
    test "queries match the model (seed #{seed})", ctx do
      :rand.seed(:exsss, {unquote(seed), 1, 2})
      opts = [partition_duration: 500, flush_threshold: 16, cold_after: 0]
      store = start_store(ctx, opts)

      Enum.reduce(1..60, %{}, fn step, model ->
        {store, model} = act(ctx, store, model, opts)
        for _ <- 1..8, do: check_query(store, model, step)
        model
      end)
    end
  end

  defp act(ctx, store, model, opts) do
    case :rand.uniform(10) do
      1 ->
        :ok = Tms.flush(store)
        {store, model}

      2 ->
        {:ok, _} = Tms.compact(store)
        {store, model}

      3 ->
        {restart_store(ctx, opts), model}

      _ ->
        points = for _ <- 1..:rand.uniform(40), do: {random_labels(), random_ts(), random_value()}
        write(store, points)
        {store, Enum.reduce(points, model, fn {l, t, v}, m -> put_in(m, [Access.key(l, %{}), t], v) end)}
    end
  end

  defp write(store, points) do
    case :rand.uniform(3) do
      1 ->
        :ok = Tms.write_batch(store, for({l, t, v} <- points, do: {"m", l, v, t}))

      2 ->
        raw =
          for {l, t, v} <- points, into: <<>> do
            {:ok, id} = Tms.resolve(store, "m", l)
            bits = if v == :nan, do: <<0x7FF8_0000_0000_0000::little-64>>, else: <<v::little-float-64>>
            <<id::little-64, t::little-signed-64, bits::binary>>
          end

        :ok = Tms.write_batch_raw(store, raw)

      3 ->
        for {l, t, v} <- points, do: :ok = Tms.write(store, "m", l, v, t)
    end
  end

  defp random_labels do
    base = %{"host" => Enum.random(@hosts), "dc" => Enum.random(@dcs)}

    case :rand.uniform(3) do
      1 -> base
      2 -> Map.put(base, "env", "prod")
      3 -> Map.put(base, "env", "dev")
    end
  end

  defp random_ts, do: :rand.uniform(2_200) - 200
  defp random_value, do: if(:rand.uniform(15) == 1, do: :nan, else: :rand.uniform(2_000) / 100)

  ## Queries

  defp check_query(store, model, step) do
    matchers = random_matchers()
    from = :rand.uniform(2_400) - 300
    to = from + :rand.uniform(2_400) - 1

    opts =
      case :rand.uniform(4) do
        1 ->
          []

        _ ->
          agg = [step: :rand.uniform(400), agg: Enum.random(@aggs)]

          case :rand.uniform(3) do
            1 -> agg
            2 -> agg ++ [group_by: Enum.take_random(["host", "dc", "env"], :rand.uniform(3) - 1)]
            3 -> agg ++ [group_by: []]
          end
      end

    {:ok, got} = Tms.query_range(store, "m", matchers, from, to, opts)
    expected = expect(model, matchers, from, to, Map.new(opts))
    got = Enum.map(got, &{&1.labels, &1.points})

    unless same?(got, expected) do
      flunk("""
      step #{step}: query_range(#{inspect(matchers)}, #{from}, #{to}, #{inspect(opts)})
      got:      #{inspect(got, limit: :infinity)}
      expected: #{inspect(expected, limit: :infinity)}
      """)
    end
  end

  defp random_matchers do
    pick = fn ->
      case :rand.uniform(6) do
        1 -> {"host", :eq, Enum.random(@hosts)}
        2 -> {"dc", :neq, Enum.random(@dcs)}
        3 -> {"dc", :regex, Enum.random(["eu-.*", "us-1|eu-2", "eu"])}
        4 -> {"host", :not_regex, Enum.random(["h[01]", "h.*"])}
        5 -> {"env", :eq, Enum.random(["", "prod"])}
        6 -> {"env", :regex, Enum.random(["dev|", "p.*"])}
      end
    end

    case :rand.uniform(4) do
      1 -> %{}
      2 -> %{"host" => Enum.random(@hosts)}
      _ -> for _ <- 1..:rand.uniform(2), do: pick.()
    end
  end

  ## The model's answers

  defp expect(model, matchers, from, to, opts) do
    series =
      model
      |> Enum.filter(fn {labels, _} -> Enum.all?(normalize(matchers), &accepts?(&1, labels)) end)
      |> Enum.sort_by(fn {labels, _} -> Enum.sort(labels) end)
      |> Enum.map(fn {labels, points} ->
        {labels, points |> Enum.filter(fn {t, _} -> t >= from and t <= to end) |> Enum.sort()}
      end)

    case opts do
      %{step: step, agg: agg, group_by: group_by} ->
        series
        |> Enum.group_by(fn {labels, _} -> Map.take(labels, group_by) end, fn {_, points} -> points end)
        |> Enum.map(fn {group, point_lists} -> {group, aggregate(point_lists, from, step, agg)} end)
        |> Enum.reject(fn {_, points} -> points == [] end)
        |> Enum.sort_by(fn {labels, _} -> Enum.sort(labels) end)

      %{step: step, agg: agg} ->
        series
        |> Enum.map(fn {labels, points} -> {labels, aggregate([points], from, step, agg)} end)
        |> Enum.reject(fn {_, points} -> points == [] end)

      _ ->
        Enum.reject(series, fn {_, points} -> points == [] end)
    end
  end

  defp normalize(m) when is_map(m), do: Enum.map(m, fn {k, v} -> {k, :eq, v} end)
  defp normalize(list), do: list

  defp accepts?({label, op, value}, labels) do
    actual = Map.get(labels, label, "")

    case op do
      :eq -> actual == value
      :neq -> actual != value
      :regex -> Regex.match?(~r/^(?:#{value})$/, actual)
      :not_regex -> not Regex.match?(~r/^(?:#{value})$/, actual)
    end
  end

  # Buckets of the series of one group (in label order), each point with
  # the value of the point before it, then the aggregation per bucket.
  defp aggregate(point_lists, from, step, agg) do
    per_series =
      for points <- point_lists do
        {tagged, _} =
          Enum.map_reduce(points, nil, fn {t, v}, prev ->
            {{Integer.floor_div(t, step) * step, t, v, prev}, v}
          end)

        Enum.filter(tagged, fn {bucket, _, _, _} -> bucket >= from end)
      end

    per_series
    |> Enum.map(&Enum.group_by(&1, fn {b, _, _, _} -> b end))
    |> Enum.flat_map(&Map.keys/1)
    |> Enum.uniq()
    |> Enum.sort()
    |> Enum.map(fn bucket ->
      in_bucket = for series <- per_series, do: Enum.filter(series, &(elem(&1, 0) == bucket))
      {bucket, value(Enum.reject(in_bucket, &(&1 == [])), agg, step)}
    end)
  end

  defp value(series, agg, step) do
    all = Enum.concat(series)
    values = Enum.map(all, &elem(&1, 2))

    case agg do
      :sum -> series |> Enum.map(fn s -> fold_sum(Enum.map(s, &elem(&1, 2))) end) |> fold_sum()
      :avg -> divide(value(series, :sum, step), length(all))
      :count -> length(all) * 1.0
      :min -> values |> Enum.reject(&(&1 == :nan)) |> then(&if(&1 == [], do: :nan, else: Enum.min(&1)))
      :max -> values |> Enum.reject(&(&1 == :nan)) |> then(&if(&1 == [], do: :nan, else: Enum.max(&1)))
      :first -> all |> Enum.min_by(&elem(&1, 1)) |> elem(2)
      :last -> all |> Enum.reverse() |> Enum.max_by(&elem(&1, 1)) |> elem(2)
      :increase -> series |> Enum.map(&increase/1) |> fold_sum()
      :rate -> divide(value(series, :increase, step), step / 1000)
    end
  end

  # Prometheus' increase of one series' points in a bucket: the last value
  # minus the one before the bucket (or the bucket's first), plus the value
  # before each drop; in the engine's order of float operations.
  defp increase([{_, _, first, before} | _] = points) do
    values = Enum.map(points, &elem(&1, 2))
    drops = for [a, b] <- Enum.chunk_every(values, 2, 1, :discard), lt?(b, a), do: a
    resets = Enum.reduce(drops, 0.0, &add(&2, &1))
    last = List.last(values)

    case before do
      nil -> add(sub(last, first), resets)
      before -> add(sub(last, before), add(resets, if(lt?(first, before), do: before, else: 0.0)))
    end
  end

  # Floats summed left to right, as the engine does; NaN is contagious.
  defp fold_sum([first | rest]), do: Enum.reduce(rest, first, &add(&2, &1))
  defp add(:nan, _), do: :nan
  defp add(_, :nan), do: :nan
  defp add(a, b), do: a + b
  defp sub(a, b), do: if(a == :nan or b == :nan, do: :nan, else: a - b)
  defp lt?(a, b), do: a != :nan and b != :nan and a < b
  defp divide(:nan, _), do: :nan
  defp divide(a, b), do: a / b

  defp same?(got, expected) when length(got) != length(expected), do: false

  defp same?(got, expected) do
    Enum.zip(got, expected)
    |> Enum.all?(fn {{gl, gp}, {el, ep}} ->
      gl == el and length(gp) == length(ep) and
        Enum.all?(Enum.zip(gp, ep), fn {{gt, gv}, {et, ev}} -> gt == et and close?(gv, ev) end)
    end)
  end

  defp close?(a, b) when is_float(a) and is_float(b), do: abs(a - b) <= 1.0e-9 * max(1.0, max(abs(a), abs(b)))
  defp close?(a, b), do: a == b
end
