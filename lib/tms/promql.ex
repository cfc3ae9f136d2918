defmodule Tms.PromQL do
  @moduledoc """
  PromQL queries, evaluated in the engine with Prometheus 2.42's semantics
  (see the README for the language covered and the few differences).

  `Tms.promql/4` and `Tms.promql_range/6` are the entry points; times are in
  the store's `:time_unit`, like every other `Tms` function, and durations in
  the query (`[5m]`, `offset 1h`) are wall-clock time whatever the unit.

  Answers are `{:ok, %{type: type, result: result}}`:

    * `:vector` - `[%{labels: %{"__name__" => ..., ...}, value: {t, v}}]`
    * `:matrix` - `[%{labels: map, points: [{t, v}, ...]}]`, sorted by labels
    * `:scalar` - `{t, v}`
    * `:string` - `{t, string}`

  with `:nan`, `:infinity` and `:neg_infinity` for those values, as
  `Tms.query_range/6` has them. Errors are `%Tms.Error{}` with kind
  `:bad_data` (a syntax or type error: the query is wrong; a syntax error's
  message starts `line:column:` as Prometheus' does, and `details` has
  `:line` and `:column`), `:execution` (it
  failed while running, e.g. many-to-many matching or too many samples) or
  `:timeout`.

  Options:

    * `:lookback_delta` - how far back an instant selector looks for a
      sample, in the store's unit (default 5 minutes)
    * `:timeout` - milliseconds the evaluation may take (default 2 minutes)
    * `:max_samples` - samples a query may hold in memory before it fails
      (default 50,000,000), so a huge query answers an error, not an OOM
  """

  alias Tms.Error
  alias Tms.Store.Owner

  @doc false
  @spec query(Tms.store(), String.t(), integer(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def query(store, query, time, opts) when is_binary(query) and is_integer(time) do
    with {:ok, handle} <- fetch(store),
         {:ok, engine_opts} <- engine_opts(opts, handle.time_unit, false),
         {:ok, answer} <-
           Tms.engine(:promql_query, [handle.engine, query, to_ms(time, handle.time_unit), engine_opts]) do
      {:ok, from_ms(answer, handle.time_unit)}
    end
  end

  def query(_store, query, time, _opts),
    do: invalid("query must be a string and time an integer, got: #{inspect(query)}, #{inspect(time)}")

  @doc false
  @spec query_range(Tms.store(), String.t(), integer(), integer(), pos_integer(), keyword()) ::
          {:ok, map()} | {:error, Error.t()}
  def query_range(store, query, from, to, step, opts)
      when is_binary(query) and is_integer(from) and is_integer(to) and is_integer(step) do
    with {:ok, handle} <- fetch(store),
         {:ok, engine_opts} <- engine_opts(opts, handle.time_unit, false),
         unit = handle.time_unit,
         {:ok, answer} <-
           Tms.engine(:promql_query_range, [
             handle.engine,
             query,
             to_ms(from, unit),
             to_ms(to, unit),
             to_ms(step, unit),
             engine_opts
           ]) do
      {:ok, from_ms(answer, unit)}
    end
  end

  def query_range(_store, query, from, to, step, _opts) do
    invalid(
      "query must be a string and from, to, step integers, got: " <>
        Enum.map_join([query, from, to, step], ", ", &inspect/1)
    )
  end

  @doc false
  # For the HTTP API: times in milliseconds, the answer as Prometheus' JSON.
  @spec json(
          Tms.store(),
          {:instant, integer()} | {:range, integer(), integer(), integer()},
          String.t(),
          keyword()
        ) ::
          {:ok, binary()} | {:error, Error.t()}
  def json(store, times, query, opts) do
    with {:ok, handle} <- fetch(store),
         {:ok, engine_opts} <- engine_opts(opts, :millisecond, true) do
      case times do
        {:instant, t} ->
          Tms.engine(:promql_query, [handle.engine, query, t, engine_opts])

        {:range, from, to, step} ->
          Tms.engine(:promql_query_range, [handle.engine, query, from, to, step, engine_opts])
      end
    end
  end

  defp engine_opts(opts, unit, json) do
    case Keyword.validate(opts, lookback_delta: nil, timeout: nil, max_samples: nil) do
      {:ok, opts} ->
        lookback = opts[:lookback_delta]

        if lookback == nil or (is_integer(lookback) and lookback > 0) do
          map =
            %{json: json}
            |> put_if(:lookback_delta, lookback && max(to_ms(lookback, unit), 1))
            |> put_if(:timeout, opts[:timeout])
            |> put_if(:max_samples, opts[:max_samples])

          {:ok, map}
        else
          invalid("lookback_delta must be a positive integer, got: #{inspect(lookback)}")
        end

      {:error, unknown} ->
        invalid("unknown PromQL options: #{inspect(unknown)}")
    end
  end

  defp put_if(map, _key, nil), do: map
  defp put_if(map, key, value), do: Map.put(map, key, value)

  defp to_ms(t, unit), do: System.convert_time_unit(t, unit, :millisecond)

  defp from_ms(%{type: type, result: result}, unit) do
    t = fn ms -> System.convert_time_unit(ms, :millisecond, unit) end

    result =
      case type do
        :vector ->
          Enum.map(result, fn %{value: {ms, v}} = s -> %{s | value: {t.(ms), v}} end)

        :matrix ->
          Enum.map(result, fn %{points: p} = s ->
            %{s | points: Enum.map(p, fn {ms, v} -> {t.(ms), v} end)}
          end)

        _ ->
          {t.(elem(result, 0)), elem(result, 1)}
      end

    %{type: type, result: result}
  end

  defp fetch(store) do
    case Owner.handle(store) do
      nil -> {:error, Error.new(:no_store, "no Tms store named #{inspect(store)} is running")}
      handle -> {:ok, handle}
    end
  end

  defp invalid(message), do: {:error, Error.new(:invalid_argument, message)}
end
