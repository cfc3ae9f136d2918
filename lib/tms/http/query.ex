defmodule Tms.HTTP.Query do
  @moduledoc false
  # `/api/v1/query` and `/api/v1/query_range`: Prometheus' parameters
  # (`query`, `time`, `start`, `end`, `step` in seconds or as a duration,
  # `timeout`) turned into one engine call that answers Prometheus' JSON.

  # Prometheus refuses range queries of more points per series than this.
  @max_points 11_000

  @doc false
  @spec instant(Tms.store(), [{String.t(), String.t()}]) ::
          {:ok, binary()} | {:error, String.t(), String.t()} | {:error, Tms.Error.t()}
  def instant(store, params) do
    with {:ok, query} <- param(params, "query"),
         {:ok, time} <- time(params, "time", System.os_time(:millisecond)),
         {:ok, opts} <- opts(params) do
      Tms.PromQL.json(store, {:instant, time}, query, opts)
    end
  end

  @doc false
  @spec range(Tms.store(), [{String.t(), String.t()}]) ::
          {:ok, binary()} | {:error, String.t(), String.t()} | {:error, Tms.Error.t()}
  def range(store, params) do
    with {:ok, query} <- param(params, "query"),
         {:ok, start} <- time(params, "start", nil),
         {:ok, stop} <- time(params, "end", nil),
         {:ok, step} <- step(params),
         :ok <- check_range(start, stop, step),
         {:ok, opts} <- opts(params) do
      Tms.PromQL.json(store, {:range, start, stop, step}, query, opts)
    end
  end

  defp check_range(start, stop, step) do
    cond do
      stop < start ->
        bad("invalid parameter \"end\": end timestamp must not be before start time")

      div(stop - start, step) > @max_points ->
        bad(
          "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        )

      true ->
        :ok
    end
  end

  defp param(params, name) do
    case List.keyfind(params, name, 0) do
      {_, value} -> {:ok, value}
      nil -> {:ok, ""}
    end
  end

  defp opts(params) do
    case List.keyfind(params, "timeout", 0) do
      nil ->
        {:ok, []}

      {_, text} ->
        case duration_ms(text) do
          {:ok, ms} when ms > 0 -> {:ok, [timeout: ms]}
          _ -> bad("invalid parameter \"timeout\": cannot parse #{inspect(text)} to a valid duration")
        end
    end
  end

  defp step(params) do
    with {:ok, text} <- required(params, "step") do
      case duration_ms(text) do
        {:ok, ms} when ms > 0 ->
          {:ok, ms}

        {:ok, _} ->
          bad(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
          )

        :error ->
          bad("invalid parameter \"step\": cannot parse #{inspect(text)} to a valid duration")
      end
    end
  end

  defp required(params, name) do
    case List.keyfind(params, name, 0) do
      {_, text} ->
        {:ok, text}

      nil ->
        bad(
          "invalid parameter #{inspect(name)}: cannot parse \"\" to a valid #{if name == "step", do: "duration", else: "timestamp"}"
        )
    end
  end

  # Unix seconds with decimals or RFC 3339, to milliseconds.
  defp time(params, name, default) do
    case List.keyfind(params, name, 0) do
      nil when default != nil ->
        {:ok, default}

      nil ->
        required(params, name)

      {_, text} ->
        case Float.parse(text) do
          {seconds, ""} ->
            {:ok, round(seconds * 1000)}

          _ ->
            case DateTime.from_iso8601(text) do
              {:ok, dt, _} ->
                {:ok, DateTime.to_unix(dt, :millisecond)}

              {:error, _} ->
                bad("invalid parameter #{inspect(name)}: cannot parse #{inspect(text)} to a valid timestamp")
            end
        end
    end
  end

  @units [
    {"ms", 1},
    {"s", 1_000},
    {"m", 60_000},
    {"h", 3_600_000},
    {"d", 86_400_000},
    {"w", 604_800_000},
    {"y", 31_536_000_000}
  ]

  # Seconds with decimals (`"15"`, `"0.5"`) or Prometheus' duration
  # syntax (`"1m30s"`), to milliseconds.
  defp duration_ms(text) do
    case Float.parse(text) do
      {seconds, ""} -> {:ok, round(seconds * 1000)}
      _ -> duration_parts(text, 0)
    end
  end

  defp duration_parts("", total), do: {:ok, total}

  defp duration_parts(text, total) do
    with {n, rest} when n >= 0 <- Integer.parse(text),
         {unit, ms} <- Enum.find(@units, fn {u, _} -> String.starts_with?(rest, u) end) do
      duration_parts(binary_part(rest, byte_size(unit), byte_size(rest) - byte_size(unit)), total + n * ms)
    else
      _ -> :error
    end
  end

  defp bad(message), do: {:error, "bad_data", message}
end
