defmodule Tms.HTTP.Export do
  @moduledoc false
  # The answer of /api/v1/export: VictoriaMetrics' JSON lines, one
  # `{"metric":{...},"values":[...],"timestamps":[...]}` per series, as a
  # stream of iodata for the server to send in chunks.

  alias Tms.HTTP.JSON

  @doc """
  The lines of the series of each `{metric, matchers}` of `work` over
  `from..to` (the store's `unit`), a metric at a time. A failed query ends
  the stream with `{:abort, reason}`.
  """
  # One chunk per metric, so an answer is never all in memory at once
  # (a metric's matching series are). A series two selectors match comes
  # once.
  def stream(store, work, from, to, unit) do
    Stream.transform(work, MapSet.new(), fn
      _work, :aborted ->
        {:halt, :aborted}

      {metric, matchers}, seen ->
        case Tms.query_range(store, metric, matchers, from, to) do
          {:ok, series} ->
            fresh = Enum.reject(series, &MapSet.member?(seen, {metric, &1.labels}))
            seen = Enum.reduce(fresh, seen, &MapSet.put(&2, {metric, &1.labels}))
            {[Enum.map(fresh, &line(metric, &1, unit))], seen}

          # The answer is already on its way: the rest of it is cut off, so
          # that the client sees it incomplete rather than short.
          {:error, e} ->
            {[{:abort, "export of #{metric} failed: #{Exception.message(e)}"}], :aborted}
        end
    end)
  end

  defp line(metric, %{labels: labels, points: points}, unit) do
    {timestamps, values} = Enum.unzip(points)
    ms = Enum.map(timestamps, &System.convert_time_unit(&1, unit, :millisecond))

    [
      ~s({"metric":),
      JSON.encode(Map.put(labels, "__name__", metric)),
      ~s(,"values":[),
      Enum.map_intersperse(values, ?,, &value/1),
      ~s(],"timestamps":[),
      Enum.map_intersperse(ms, ?,, &Integer.to_string/1),
      "]}\n"
    ]
  end

  defp value(:nan), do: ~s("NaN")
  defp value(:infinity), do: ~s("+Inf")
  defp value(:neg_infinity), do: ~s("-Inf")
  defp value(v) when v == trunc(v) and abs(v) < 1.0e15, do: Integer.to_string(trunc(v))
  defp value(v), do: :erlang.float_to_binary(v, [:short])
end
