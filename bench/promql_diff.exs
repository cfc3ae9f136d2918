# Differential PromQL: a real Prometheus 2.42 and Tms hold the same real
# scrape (../shared/data/real_scrape_2s_40m.tsv.gz: node_exporter,
# Prometheus and VictoriaMetrics every 2 s for 40 minutes, NaNs and ms
# timestamps as scraped), and every query of bench/promql_corpus.txt is
# asked of both over HTTP, as Grafana asks: range queries over the data's
# span at steps of 15 s, 60 s and 300 s, and instant queries at 3 times
# inside it. Answers are compared: both errors count as equal; else the same
# resultType, the same series (label sets), per series the same timestamps
# and values within 1e-6 relative (0 exact, NaN = NaN, infinities exact),
# and for instant sort/sort_desc/topk/bottomk the same order (series of equal
# value may swap). A query whose instant answer is a matrix (`x[1m]`, a bare
# subquery) runs as instant queries only: Prometheus refuses range queries
# of it. The corpus has a few errors on purpose (execution errors both sides
# must give); a bad_data error from Prometheus is a mistake in the corpus.
#
# Prometheus gets the data as TSDB blocks from `promtool tsdb
# create-blocks-from openmetrics` (cached in $PROM_BLOCKS, default
# /tmp/tms_promql_blocks); Tms through Tms.import of text bodies made from
# the same TSV lines (ms timestamps, the TSV's own value text).
#
#   MIX_ENV=bench mix run bench/promql_diff.exs
#   TMS_DIFF_SELF=1 MIX_ENV=bench mix run bench/promql_diff.exs   (Prometheus against itself: must be 100%)
#
# Other knobs: CORPUS=path, DIFF_LIMIT=40 (differing runs printed in full),
# ONLY=regex (run the corpus queries that match). Exits 1 when any run differs.

Code.require_file("support/prometheus_peer.ex", __DIR__)

defmodule Tms.Bench.PromQLDiff do
  @moduledoc false

  @doc "Whether the answer's order is part of it: an instant sort/sort_desc/topk/bottomk at the top."
  def ordered?(query) do
    q = String.trim(query)

    case Regex.run(~r/^(sort_desc|sort|topk|bottomk)\s*/, q) do
      [head, _] ->
        rest = q |> binary_part(byte_size(head), byte_size(q) - byte_size(head)) |> grouping()
        # The call's argument list must close at the end (or before a trailing grouping).
        case close_paren(rest) do
          {:ok, after_args} -> String.trim(grouping(after_args)) == ""
          :error -> false
        end

      nil ->
        false
    end
  end

  # Skips a `by (...)` / `without (...)` clause.
  defp grouping(text) do
    text = String.trim_leading(text)

    case Regex.run(~r/^(by|without)\s*/, text) do
      [head, _] ->
        case close_paren(binary_part(text, byte_size(head), byte_size(text) - byte_size(head))) do
          {:ok, rest} -> String.trim_leading(rest)
          :error -> text
        end

      nil ->
        text
    end
  end

  # `text` starts with `(`: what follows its matching `)` (quotes respected).
  defp close_paren("(" <> rest), do: scan(rest, 1)
  defp close_paren(_), do: :error

  defp scan(rest, 0), do: {:ok, rest}
  defp scan("", _), do: :error
  defp scan("(" <> rest, d), do: scan(rest, d + 1)
  defp scan(")" <> rest, d), do: scan(rest, d - 1)

  defp scan(<<q, rest::binary>>, d) when q in [?", ?', ?`] do
    case skip_string(rest, q) do
      {:ok, rest} -> scan(rest, d)
      :error -> :error
    end
  end

  defp scan(<<_, rest::binary>>, d), do: scan(rest, d)

  defp skip_string("", _), do: :error
  defp skip_string("\\" <> <<_, rest::binary>>, q), do: skip_string(rest, q)
  defp skip_string(<<q, rest::binary>>, q), do: {:ok, rest}
  defp skip_string(<<_, rest::binary>>, q), do: skip_string(rest, q)

  @doc """
  Compares Prometheus' answer `p` with the other side's `t` (each `{status,
  json}`): `:equal`, `{:both_error, p_error, t_error}` or `{:diff, kind, text}`.
  """
  def compare(p, t, ordered?) do
    case {success(p), success(t)} do
      {{:error, pe}, {:error, te}} ->
        {:both_error, pe, te}

      {{:ok, _}, {:error, te}} ->
        {:diff, :error, "Prometheus answered, Tms failed: #{te}"}

      {{:error, pe}, {:ok, _}} ->
        {:diff, :error, "Prometheus failed (#{pe}), Tms answered"}

      {{:ok, pd}, {:ok, td}} ->
        compare_data(pd, td, ordered?)
    end
  end

  defp success({200, %{"status" => "success", "data" => data}}), do: {:ok, data}

  defp success({status, json}) when is_map(json),
    do: {:error, "#{status} #{json["errorType"]}: #{String.slice(to_string(json["error"]), 0, 200)}"}

  defp success({status, other}), do: {:error, "#{status} #{inspect(other, limit: 5)}"}

  defp compare_data(%{"resultType" => pt}, %{"resultType" => tt}, _) when pt != tt,
    do: {:diff, :result_type, "resultType: Prometheus #{pt}, Tms #{tt}"}

  defp compare_data(%{"resultType" => type, "result" => pr}, %{"result" => tr}, _ordered?)
       when type in ["scalar", "string"] do
    case point_diff(pr, tr) do
      nil -> :equal
      text -> {:diff, :values, "#{type}: #{text}"}
    end
  rescue
    e -> {:diff, :shape, "#{type}: malformed #{inspect(tr, limit: 5)} (#{Exception.message(e)})"}
  end

  defp compare_data(%{"resultType" => type, "result" => pr}, %{"result" => tr}, ordered?)
       when type in ["vector", "matrix"] and is_list(tr) do
    key = if type == "vector", do: "value", else: "values"
    pm = Enum.map(pr, &{&1["metric"], &1[key]})
    tm = Enum.map(tr, &{Map.get(&1, "metric"), Map.get(&1, key)})
    pkeys = Enum.map(pm, &elem(&1, 0))
    tkeys = Enum.map(tm, &elem(&1, 0))
    pset = MapSet.new(pkeys)
    tset = MapSet.new(tkeys)

    cond do
      MapSet.size(tset) != length(tkeys) ->
        dup = tkeys |> Enum.frequencies() |> Enum.find(fn {_, n} -> n > 1 end) |> elem(0)
        {:diff, :series, "Tms has #{series(dup)} twice"}

      pset != tset ->
        missing = MapSet.difference(pset, tset) |> Enum.sort() |> Enum.take(2)
        extra = MapSet.difference(tset, pset) |> Enum.sort() |> Enum.take(2)

        text =
          "series: Prometheus #{MapSet.size(pset)}, Tms #{MapSet.size(tset)}" <>
            if(missing != [], do: "; not in Tms: " <> Enum.map_join(missing, ", ", &series/1), else: "") <>
            if(extra != [], do: "; only in Tms: " <> Enum.map_join(extra, ", ", &series/1), else: "")

        {:diff, :series, text}

      true ->
        tmap = Map.new(tm)

        value_diff =
          Enum.find_value(pm, fn {metric, ppoints} ->
            tpoints = tmap[metric]

            text =
              if type == "vector",
                do: point_diff(ppoints, tpoints),
                else: points_diff(ppoints, tpoints)

            text && {metric, text}
          end)

        cond do
          value_diff != nil ->
            {metric, text} = value_diff
            kind = if text =~ "timestamps", do: :timestamps, else: :values
            {:diff, kind, "#{series(metric)}: #{text}"}

          # The order, up to series of equal value (Prometheus' own order
          # among ties is whatever its sort and heap leave).
          ordered? and type == "vector" and pkeys != tkeys and
              not Enum.all?(Enum.zip(pm, tm), fn {{_, [_, a]}, {_, [_, b]}} -> same_value?(a, b) end) ->
            i = Enum.zip(pkeys, tkeys) |> Enum.find_index(fn {a, b} -> a != b end)

            {:diff, :order,
             "order differs at ##{i}: Prometheus #{series(Enum.at(pkeys, i))}, Tms #{series(Enum.at(tkeys, i))}"}

          true ->
            :equal
        end
    end
  rescue
    e -> {:diff, :shape, "#{type}: malformed answer (#{Exception.message(e)})"}
  end

  defp compare_data(%{"resultType" => type}, td, _),
    do: {:diff, :shape, "#{type}: Tms answered #{inspect(td, limit: 5, printable_limit: 200)}"}

  # One [t, "v"] point against another.
  defp point_diff([pt, pv], [tt, tv]) do
    cond do
      ms(pt) != ms(tt) -> "timestamp: Prometheus #{pt}, Tms #{tt}"
      not same_value?(pv, tv) -> "at #{pt}: Prometheus #{pv}, Tms #{tv}"
      true -> nil
    end
  end

  defp point_diff(p, t), do: "point: Prometheus #{inspect(p)}, Tms #{inspect(t)}"

  defp points_diff(pp, tp) when is_list(tp) do
    pts = Enum.map(pp, fn [t, _] -> ms(t) end)
    tts = Enum.map(tp, fn [t, _] -> ms(t) end)

    if pts != tts do
      extra = tts -- pts
      missing = pts -- tts

      "timestamps: Prometheus #{length(pts)} points, Tms #{length(tts)}" <>
        if(missing != [], do: "; not in Tms: #{secs(Enum.take(missing, 3))}", else: "") <>
        if(extra != [], do: "; only in Tms: #{secs(Enum.take(extra, 3))}", else: "")
    else
      bad = Enum.zip(pp, tp) |> Enum.filter(fn {[_, a], [_, b]} -> not same_value?(a, b) end)

      case bad do
        [] ->
          nil

        [{[t, a], [_, b]} | _] ->
          "#{length(bad)} of #{length(pp)} values differ, first at #{t}: Prometheus #{a}, Tms #{b}"
      end
    end
  end

  defp points_diff(_pp, tp), do: "values: Tms answered #{inspect(tp, limit: 5)}"

  defp secs(list), do: Enum.map_join(list, ", ", &:erlang.float_to_binary(&1 / 1000, decimals: 3))

  defp ms(t) when is_number(t), do: round(t * 1000)

  @doc "Two values as Prometheus writes them (strings): equal within 1e-6 relative, NaN = NaN."
  def same_value?(a, a), do: true

  def same_value?(a, b) do
    case {number(a), number(b)} do
      {x, y} when is_float(x) and is_float(y) -> abs(x - y) <= 1.0e-6 * max(abs(x), abs(y))
      _ -> false
    end
  end

  defp number("NaN"), do: :nan
  defp number("+Inf"), do: :inf
  defp number("-Inf"), do: :neg_inf

  defp number(text) when is_binary(text) do
    case Float.parse(text) do
      {f, ""} -> f
      _ -> {:text, text}
    end
  end

  defp number(other), do: {:other, other}

  def series(nil), do: "nil"

  def series(metric) do
    {name, labels} = Map.pop(metric, "__name__", "")
    name <> "{" <> Enum.map_join(Enum.sort(labels), ",", fn {k, v} -> ~s(#{k}="#{v}") end) <> "}"
  end

  @doc "Prometheus text lines (ms timestamps) for `series` from PrometheusPeer.read_tsv!/1."
  def text_lines({name, labels, points}) do
    prefix = name <> "{" <> Enum.map_join(labels, ",", fn {k, v} -> ~s(#{k}="#{escape(v)}") end) <> "} "
    for {ts, v} <- points, do: [prefix, text_value(v), " ", Integer.to_string(ts), "\n"]
  end

  defp escape(v),
    do: v |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")

  defp text_value("nan"), do: "NaN"
  defp text_value("inf"), do: "+Inf"
  defp text_value("-inf"), do: "-Inf"
  defp text_value(v), do: v
end

alias Tms.Bench.PrometheusPeer, as: Peer
alias Tms.Bench.PromQLDiff, as: Diff

{:ok, _} = Application.ensure_all_started(:inets)
self? = System.get_env("TMS_DIFF_SELF", "") not in ["", "0", "false"]
limit = String.to_integer(System.get_env("DIFF_LIMIT", "40"))
data = Path.expand("../../shared/data/real_scrape_2s_40m.tsv.gz", __DIR__)
blocks = System.get_env("PROM_BLOCKS", Path.join(System.tmp_dir!(), "tms_promql_blocks"))
corpus = System.get_env("CORPUS", Path.join(__DIR__, "promql_corpus.txt"))

free_port = fn ->
  {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
  {:ok, port} = :inet.port(socket)
  :gen_tcp.close(socket)
  port
end

queries =
  corpus
  |> File.read!()
  |> String.split("\n")
  |> Enum.map(&String.trim/1)
  |> Enum.reject(&(&1 == "" or String.starts_with?(&1, "#")))
  |> then(fn qs ->
    case System.get_env("ONLY") do
      nil -> qs
      re -> Enum.filter(qs, &Regex.match?(Regex.compile!(re), &1))
    end
  end)

{backfill_us, span} = :timer.tc(fn -> Peer.backfill!(data, blocks) end)

IO.puts(
  "Prometheus blocks in #{blocks}: #{span.samples} samples, #{span.min_ms}..#{span.max_ms} ms " <>
    "(#{Float.round(backfill_us / 1.0e6, 1)} s)"
)

prom = Peer.start!(blocks, free_port.())

{other_url, cleanup} =
  if self? do
    IO.puts(~s|TMS_DIFF_SELF: comparing Prometheus with itself ("Tms" below is Prometheus again)|)
    {prom.url, fn -> :ok end}
  else
    {:ok, _} = Application.ensure_all_started(:tms)
    dir = Path.join(System.tmp_dir!(), "tms_promql_diff_#{System.unique_integer([:positive])}")
    File.rm_rf!(dir)
    store = :promql_diff

    {:ok, sup} =
      Supervisor.start_link([{Tms, name: store, data_dir: dir, wal_sync: :never, http: [port: 0]}],
        strategy: :one_for_one
      )

    {load_us, imported} =
      :timer.tc(fn ->
        data
        |> Peer.read_tsv!()
        |> Enum.chunk_every(50)
        |> Enum.map(fn chunk ->
          body = chunk |> Enum.map(&Diff.text_lines/1) |> IO.iodata_to_binary()
          {:ok, %{samples: n}} = Tms.import(store, :prometheus_text, body)
          n
        end)
        |> Enum.sum()
      end)

    :ok = Tms.flush(store)
    {:ok, info} = Tms.info(store)

    IO.puts(
      "Tms store in #{dir}: #{imported} samples imported, #{info.series} series " <>
        "(#{Float.round(load_us / 1.0e6, 1)} s)"
    )

    imported == span.samples ||
      IO.puts("WARNING: Tms imported #{imported} samples, Prometheus' blocks hold #{span.samples}")

    {"http://127.0.0.1:#{Tms.HTTP.port(store)}",
     fn ->
       Supervisor.stop(sup)
       File.rm_rf!(dir)
     end}
  end

secs = fn ms -> :erlang.float_to_binary(ms / 1000, decimals: 3) end
span_ms = span.max_ms - span.min_ms
at = fn f -> span.min_ms + round(span_ms * f) end

# A scrape's own timestamp at or before `ms`, as Prometheus has it: instant
# times on a sample, and a minute after one (the left edge of `[1m]`), are
# where window ends are tested.
sample_at = fn selector, ms ->
  case Peer.query(prom.url, "/api/v1/query", query: "timestamp(#{selector})", time: secs.(ms)) do
    {200, %{"data" => %{"result" => [%{"value" => [_, v]}]}}} -> round(String.to_float(v) * 1000)
    _ -> ms
  end
end

# 30% in, anywhere; 62% in, on a node_exporter scrape; 97% in, 1 m after a Prometheus scrape.
instants = [
  secs.(at.(0.3)),
  secs.(sample_at.("node_load1", at.(0.62))),
  secs.(sample_at.(~s(go_goroutines{job="prometheus"}), at.(0.97) - 60_000) + 60_000)
]

IO.puts(
  "range queries #{secs.(span.min_ms)}..#{secs.(span.max_ms)}; instant queries at #{Enum.join(instants, ", ")}"
)

instant_runs = for t <- instants, do: {"/api/v1/query", [time: t]}

range_runs =
  for step <- [15, 60, 300],
      do: {"/api/v1/query_range", [start: secs.(span.min_ms), end: secs.(span.max_ms), step: step]}

run = fn query, {path, params} ->
  params = [query: query] ++ params
  ordered? = path == "/api/v1/query" and Diff.ordered?(query)
  p = Peer.query(prom.url, path, params)
  t = Peer.query(other_url, path, params)
  {query, path, params, p, Diff.compare(p, t, ordered?)}
end

results =
  try do
    # Tms' PromQL endpoints may not be there yet: say so once rather than 1,000 times.
    case Peer.query(other_url, "/api/v1/query", query: "1", time: hd(instants)) do
      {200, _} -> :ok
      answer -> IO.puts("NOTE: #{other_url}/api/v1/query?query=1 answered #{inspect(answer, limit: 8)}")
    end

    {us, results} =
      :timer.tc(fn ->
        Enum.flat_map(queries, fn query ->
          instant = Enum.map(instant_runs, &run.(query, &1))

          # A range vector (`x[1m]`, a bare subquery) is an instant query's
          # answer only: Prometheus refuses it as a range query.
          range_vector? =
            Enum.any?(instant, &match?({_, _, _, {200, %{"data" => %{"resultType" => "matrix"}}}, _}, &1))

          if range_vector?, do: instant, else: instant ++ Enum.map(range_runs, &run.(query, &1))
        end)
      end)

    IO.puts("#{length(results)} runs in #{Float.round(us / 1.0e6, 1)} s")
    results
  after
    Peer.stop(prom)
    cleanup.()
  end

equal = Enum.count(results, fn {_, _, _, _, r} -> r == :equal or match?({:both_error, _, _}, r) end)
both_error = Enum.filter(results, &match?({_, _, _, _, {:both_error, _, _}}, &1))
diffs = Enum.filter(results, &match?({_, _, _, _, {:diff, _, _}}, &1))

# What Prometheus itself refuses: bad_data is a corpus mistake, whatever the other side says.
rejected =
  results
  |> Enum.filter(fn {_, _, _, {status, json}, _} -> status != 200 or json["status"] != "success" end)
  |> Enum.uniq_by(&elem(&1, 0))

if rejected != [] do
  IO.puts("\nQueries Prometheus answered with an error (#{length(rejected)}):")

  for {query, path, params, {status, json}, _} <- rejected do
    IO.puts(
      "  #{query}\n    #{path} #{inspect(Keyword.delete(params, :query))}: #{status} #{json["errorType"]}: #{json["error"]}"
    )
  end
end

# Queries that never return a sample test little (some do on purpose: absent() of a present series).
empty =
  results
  |> Enum.group_by(&elem(&1, 0), fn {_, _, _, p, _} -> p end)
  |> Enum.filter(fn {_, answers} ->
    Enum.all?(answers, &match?({200, %{"data" => %{"result" => []}}}, &1))
  end)
  |> Enum.map(&elem(&1, 0))

if empty != [] do
  IO.puts("\nQueries whose Prometheus answers were all empty (#{length(empty)}):")
  for q <- empty, do: IO.puts("  #{q}")
end

if both_error != [] do
  IO.puts("\nRuns both sides answered with an error (counted equal): #{length(both_error)}")

  for {query, _, _, {_, pj}, {:both_error, pe, te}} <- Enum.uniq_by(both_error, &elem(&1, 0)) do
    same = if String.contains?(te, " #{pj["errorType"]}:"), do: "", else: " (another errorType)"
    IO.puts("  #{query}\n    Prometheus #{pe}\n    Tms #{te}#{same}")
  end
end

if diffs != [] do
  kinds = diffs |> Enum.frequencies_by(fn {_, _, _, _, {:diff, kind, _}} -> kind end)
  by_query = diffs |> Enum.map(&elem(&1, 0)) |> Enum.uniq()

  IO.puts(
    "\nDiffering runs: #{length(diffs)} in #{length(by_query)} queries; by kind: " <>
      Enum.map_join(Enum.sort(kinds), ", ", fn {k, n} -> "#{k} #{n}" end)
  )

  # The first differing run of each query, then the others, up to the limit.
  {firsts, others} =
    Enum.split_with(Enum.with_index(diffs), fn {d, i} ->
      i == Enum.find_index(diffs, &(elem(&1, 0) == elem(d, 0)))
    end)

  shown = (firsts ++ others) |> Enum.map(&elem(&1, 0)) |> Enum.take(limit)

  for {query, path, params, _, {:diff, kind, text}} <- shown do
    IO.puts("\n  #{query}\n    #{path} #{inspect(Keyword.delete(params, :query))}\n    [#{kind}] #{text}")
  end

  if length(diffs) > limit, do: IO.puts("\n  ... #{length(diffs) - limit} more (DIFF_LIMIT=#{limit})")

  IO.puts("\nQueries with a differing run:")
  for q <- by_query, do: IO.puts("  #{q}")
end

IO.puts(
  "\nPromQL differential: #{equal}/#{length(results)} query runs equal (#{length(queries)} queries)" <>
    if(both_error != [], do: ", #{length(both_error)} of them errors on both sides", else: "")
)

if diffs != [], do: System.halt(1)
