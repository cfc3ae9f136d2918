defmodule Tms.HTTP do
  @moduledoc """
  The Prometheus- and VictoriaMetrics-compatible HTTP API of a store, as a
  plain function: `handle/6` takes a request's parts and answers
  `{status, headers, body}`.

  A store started with `http: [port: 9201]` serves it over HTTP/1.1 with
  keep-alive (see `Tms` for the options; the server is the BEAM's own HTTP
  parser on `:gen_tcp`, not `:httpd`, which hands bodies over as charlists
  and measured at a third of VictoriaMetrics' remote_write rate). A Phoenix
  or Plug application can serve it from its own router instead:

      # in a Plug router
      match "/api/v1/*_" do
        {:ok, body, conn} = Plug.Conn.read_body(conn, length: 64_000_000)
        {status, headers, resp} =
          Tms.HTTP.handle(:metrics, conn.method, conn.request_path, conn.query_string,
                          conn.req_headers, body)
        conn |> Plug.Conn.merge_resp_headers(headers) |> Plug.Conn.send_resp(status, resp)
      end

  ## Endpoints

  | path | what |
  |---|---|
  | `POST /api/v1/write` | Prometheus remote_write 1.0; 204, 400 on bad data, 503 with `Retry-After` when the store is overloaded; `extra_label=k=v` |
  | `POST /api/v1/import/prometheus` | text exposition; `extra_label=k=v` (repeatable), `timestamp` (ms) for lines without one |
  | `POST /api/v1/import` | VictoriaMetrics JSON lines; `extra_label=k=v` |
  | `GET,POST /api/v1/export` | JSON lines of the series matching `match[]` over `start`..`end` (Unix seconds or RFC 3339), sent a metric at a time (`{:chunks, stream}`) |
  | `GET,POST /api/v1/series` | the label sets of the series matching `match[]` |
  | `GET,POST /api/v1/labels` | label names, of the series matching `match[]` if given |
  | `GET,POST /api/v1/label/<name>/values` | a label's values, of the series matching `match[]` if given |
  | `GET,POST /api/v1/query` | a PromQL instant query (`query`, `time`, `timeout`), Prometheus' JSON written by the engine |
  | `GET,POST /api/v1/query_range` | a PromQL range query (`query`, `start`, `end`, `step` as seconds or a duration, `timeout`) |
  | `GET /api/v1/status/buildinfo` | what Grafana probes to recognise a Prometheus-compatible server |
  | `GET /metrics` | the store's own counters and gauges (`Tms.info/1`) in Prometheus text |
  | `GET /health` | 200 while the store is open |

  Errors are Prometheus' JSON shape,
  `{"status":"error","errorType":"bad_data","error":"..."}`, with its status
  codes. On the series endpoints `start` and `end` keep the series with
  data in that range (see `Tms.series/4`; by default all time).
  """

  alias Tms.HTTP.{Export, JSON, Selector}

  @type headers :: [{String.t(), String.t()}]

  @version Mix.Project.config()[:version]

  @doc """
  The port a store's HTTP server listens on (the one picked for `port: 0`).
  """
  @spec port(Tms.store()) :: :inet.port_number()
  def port(store), do: Tms.HTTP.Server.port(store)

  @doc """
  Answers one request. `method` is `"GET"`, `"POST"`, ...; `path` the path
  without the query; `query` the raw query string (`"a=1&b=2"`); `headers`
  lower-case names with their values; `body` the whole request body. The
  answer's body is iodata, or for `/api/v1/export` `{:chunks, stream}`, a
  stream of iodata to send as it comes (chunked transfer encoding); an
  element `{:abort, reason}` means the answer failed after it began: end the
  connection without finishing the body, so that the client sees it cut
  off (it is the stream's last element).
  `opts`: `token:` a bearer token every request must carry (compared in
  constant time), else 401.
  """
  @spec handle(Tms.store(), String.t(), String.t(), String.t(), headers(), binary(), keyword()) ::
          {100..599, headers(), iodata() | {:chunks, Enumerable.t()}}
  def handle(store, method, path, query, headers, body, opts \\ []) do
    if authorized?(headers, opts[:token]) do
      params = URI.query_decoder(query || "") |> Enum.to_list()

      params =
        if method == "POST" and form?(headers),
          do: params ++ Enum.to_list(URI.query_decoder(body)),
          else: params

      route(store, method, String.split(path, "/", trim: true), params, body)
    else
      error(401, "unauthorized", "a valid bearer token is required")
    end
  rescue
    # A query string or form that does not decode.
    e in ArgumentError -> error(400, "bad_data", Exception.message(e))
  end

  defp route(store, "POST", ["api", "v1", "write"], params, body) do
    with {:ok, opts} <- import_opts(params, false), do: import_body(store, :remote_write, body, opts)
  end

  defp route(store, "POST", ["api", "v1", "import", "prometheus"], params, body) do
    with {:ok, opts} <- import_opts(params, true), do: import_body(store, :prometheus_text, body, opts)
  end

  defp route(store, "POST", ["api", "v1", "import"], params, body) do
    with {:ok, opts} <- import_opts(params, false), do: import_body(store, :json_lines, body, opts)
  end

  defp route(store, method, ["api", "v1", "export"], params, _body) when method in ["GET", "POST"] do
    with {:ok, selectors} <- selectors(params, true),
         {:ok, {unit, from, to}} <- time_range(store, params, :now),
         {:ok, metrics} <- answer(Tms.metrics(store)),
         {:ok, work} <- export_work(metrics, selectors) do
      {200, [{"content-type", "application/stream+json"}],
       {:chunks, Export.stream(store, work, from, to, unit)}}
    end
  end

  defp route(store, method, ["api", "v1", "series"], params, _body) when method in ["GET", "POST"] do
    with {:ok, selectors} <- selectors(params, true),
         {:ok, range} <- series_range(store, params),
         {:ok, series} <- matching(store, selectors, range) do
      success(for {metric, labels} <- series, do: Map.put(labels, "__name__", metric))
    end
  end

  defp route(store, method, ["api", "v1", "labels"], params, _body) when method in ["GET", "POST"] do
    with {:ok, selectors} <- selectors(params, false),
         {:ok, range} <- series_range(store, params),
         {:ok, series} <- matching(store, selectors, range) do
      names = for {_, labels} <- series, name <- Map.keys(labels), into: MapSet.new(["__name__"]), do: name
      success(names |> Enum.sort())
    end
  end

  defp route(store, method, ["api", "v1", "label", name, "values"], params, _body)
       when method in ["GET", "POST"] do
    with {:ok, selectors} <- selectors(params, false),
         {:ok, range} <- series_range(store, params),
         {:ok, series} <- matching(store, selectors, range) do
      values =
        for {metric, labels} <- series,
            value = if(name == "__name__", do: metric, else: labels[name]),
            value != nil,
            uniq: true,
            do: value

      success(Enum.sort(values))
    end
  end

  defp route(store, method, ["api", "v1", "query"], params, _body) when method in ["GET", "POST"] do
    query_answer(Tms.HTTP.Query.instant(store, params))
  end

  defp route(store, method, ["api", "v1", "query_range"], params, _body) when method in ["GET", "POST"] do
    query_answer(Tms.HTTP.Query.range(store, params))
  end

  defp route(_store, "GET", ["api", "v1", "status", "buildinfo"], _params, _body) do
    success(%{
      version: "2.42.0",
      revision: "tms-#{@version}",
      branch: "tms",
      buildUser: "tms",
      buildDate: "",
      goVersion: "none"
    })
  end

  defp route(store, "GET", ["metrics"], _params, _body) do
    case Tms.info(store) do
      {:ok, info} -> {200, [{"content-type", "text/plain; version=0.0.4"}], own_metrics(info)}
      {:error, e} -> engine_error(e)
    end
  end

  defp route(store, "GET", ["health"], _params, _body) do
    case Tms.info(store) do
      {:ok, _} -> {200, [{"content-type", "text/plain"}], "OK"}
      {:error, e} -> engine_error(e)
    end
  end

  defp route(_store, _method, path, _params, _body) do
    if path in known_paths() or match?(["api", "v1", "label", _, "values"], path) do
      {status, headers, body} = error(405, "bad_data", "method not allowed")
      {status, [{"allow", allowed(path)} | headers], body}
    else
      error(404, "not_found", "no such endpoint: /" <> Enum.join(path, "/"))
    end
  end

  defp known_paths do
    [
      ~w(api v1 write),
      ~w(api v1 import prometheus),
      ~w(api v1 import),
      ~w(api v1 series),
      ~w(api v1 query),
      ~w(api v1 query_range),
      ~w(api v1 export),
      ~w(api v1 labels),
      ~w(api v1 status buildinfo),
      ~w(metrics),
      ~w(health)
    ]
  end

  defp allowed(["api", "v1", p]) when p in ["series", "labels", "export", "query", "query_range"],
    do: "GET, POST"

  defp allowed(["api", "v1", "label", _, "values"]), do: "GET, POST"
  defp allowed(["api", "v1", "status", _]), do: "GET"
  defp allowed([p]) when p in ["metrics", "health"], do: "GET"
  defp allowed(_), do: "POST"

  # ------------------------------------------------------------------ import

  defp import_body(store, format, body, opts) do
    case Tms.import(store, format, body, opts) do
      {:ok, _report} -> {204, [], ""}
      {:error, %Tms.Error{kind: :overloaded} = e} -> with_retry(engine_error(e))
      {:error, e} -> engine_error(e)
    end
  end

  defp with_retry({status, headers, body}), do: {status, [{"retry-after", "1"} | headers], body}

  defp import_opts(params, timestamp?) do
    labels =
      for {"extra_label", pair} <- params do
        case String.split(pair, "=", parts: 2) do
          [k, v] when k != "" -> {:ok, {k, v}}
          _ -> {:error, pair}
        end
      end

    case Enum.find(labels, &match?({:error, _}, &1)) do
      {:error, pair} ->
        error(400, "bad_data", "extra_label must be name=value, got: #{inspect(pair)}")

      nil ->
        opts = [labels: Enum.map(labels, fn {:ok, kv} -> kv end)]
        timestamp = if timestamp?, do: List.keyfind(params, "timestamp", 0)

        case timestamp do
          nil ->
            {:ok, opts}

          {_, ts} ->
            case Integer.parse(ts) do
              {ms, ""} -> {:ok, Keyword.put(opts, :timestamp, ms)}
              _ -> error(400, "bad_data", "timestamp must be integer milliseconds, got: #{inspect(ts)}")
            end
        end
    end
  end

  # ------------------------------------------------------------------ series

  defp selectors(params, required?) do
    texts = for {"match[]", text} <- params, do: text

    cond do
      texts == [] and required? ->
        error(400, "bad_data", "no match[] parameter provided")

      true ->
        Enum.reduce_while(texts, {:ok, []}, fn text, {:ok, acc} ->
          case Selector.parse(text) do
            {:ok, selector} -> {:cont, {:ok, [selector | acc]}}
            {:error, why} -> {:halt, error(400, "bad_data", "match[] #{inspect(text)}: #{why}")}
          end
        end)
    end
  end

  # `[{metric, labels}]` of the series any selector matches (every series
  # for none), each once; or an error answer.
  # `start` and `end` of the series endpoints: by default all time, as
  # Prometheus takes them.
  defp series_range(store, params) do
    with {:ok, {_unit, from, to}} <- time_range(store, params, :max), do: {:ok, [from: from, to: to]}
  end

  # The store's time unit and `start`..`end` in it (`start` by default the
  # earliest time, `end` `end_default`: `:now` or `:max`).
  defp time_range(store, params, end_default) do
    with {:ok, unit} <- answer(time_unit(store)),
         {:ok, from} <- time_param(params, "start", :min, unit),
         {:ok, to} <- time_param(params, "end", end_default, unit) do
      {:ok, {unit, from, to}}
    end
  end

  # The series matching any of `selectors` with data in `range`.
  defp matching(store, [], range), do: matching(store, [{nil, []}], range)

  defp matching(store, selectors, range) do
    with {:ok, metrics} <- answer(Tms.metrics(store)) do
      selectors
      |> Enum.reduce_while({:ok, MapSet.new()}, fn {metric_matcher, matchers}, {:ok, acc} ->
        with {:ok, names} <- metrics_matching(metrics, metric_matcher),
             {:ok, acc} <- series_of(store, names, matchers, range, acc) do
          {:cont, {:ok, acc}}
        else
          response -> {:halt, response}
        end
      end)
      |> case do
        {:ok, set} -> {:ok, Enum.sort(set)}
        response -> response
      end
    end
  end

  defp series_of(store, names, matchers, range, acc) do
    Enum.reduce_while(names, {:ok, acc}, fn name, {:ok, acc} ->
      case answer(Tms.series(store, name, matchers, range)) do
        {:ok, labels} -> {:cont, {:ok, Enum.reduce(labels, acc, &MapSet.put(&2, {name, &1}))}}
        response -> {:halt, response}
      end
    end)
  end

  defp metrics_matching(metrics, nil), do: {:ok, metrics}
  defp metrics_matching(metrics, {:eq, name}), do: {:ok, Enum.filter(metrics, &(&1 == name))}
  defp metrics_matching(metrics, {:neq, name}), do: {:ok, Enum.reject(metrics, &(&1 == name))}

  defp metrics_matching(metrics, {op, pattern}) when op in [:regex, :not_regex] do
    case Regex.compile("^(?:" <> pattern <> ")$") do
      {:ok, re} -> {:ok, Enum.filter(metrics, &(Regex.match?(re, &1) == (op == :regex)))}
      {:error, {why, _}} -> error(400, "bad_data", "bad regex #{inspect(pattern)}: #{why}")
    end
  end

  # ------------------------------------------------------------------ export

  # `[{metric, matchers}]`: each selector's metrics, in order.
  defp export_work(metrics, selectors) do
    Enum.reduce_while(Enum.reverse(selectors), {:ok, []}, fn {metric_matcher, matchers}, {:ok, acc} ->
      case metrics_matching(metrics, metric_matcher) do
        {:ok, names} -> {:cont, {:ok, acc ++ for(name <- names, do: {name, matchers})}}
        response -> {:halt, response}
      end
    end)
  end

  defp time_unit(store) do
    with {:ok, info} <- Tms.info(store), do: {:ok, info.time_unit}
  end

  # A time parameter as Prometheus takes it (Unix seconds with decimals, or
  # RFC 3339), in the store's unit.
  defp time_param(params, name, default, unit) do
    case List.keyfind(params, name, 0) do
      nil when default == :min ->
        {:ok, -Bitwise.bsl(1, 62)}

      nil when default == :max ->
        {:ok, Bitwise.bsl(1, 62)}

      nil ->
        {:ok, System.os_time(unit)}

      {_, text} ->
        parse_time(text, unit) || error(400, "bad_data", "cannot parse #{inspect(text)} as #{name}")
    end
  end

  defp parse_time(text, unit) do
    case Float.parse(text) do
      {seconds, ""} ->
        {:ok, round(seconds * System.convert_time_unit(1, :second, unit))}

      _ ->
        case DateTime.from_iso8601(text) do
          {:ok, dt, _offset} -> {:ok, DateTime.to_unix(dt, unit)}
          {:error, _} -> nil
        end
    end
  end

  # ------------------------------------------------------------------ own metrics

  @counters ~w(cache_hits cache_misses flushes corrupt_chunk_reads chunks_lost points_lost
               wal_replayed_points wal_corrupt_records wal_torn_bytes async_write_errors)a

  defp own_metrics(info) do
    for {key, value} <- Enum.sort(info), is_integer(value) do
      name = "tms_#{key}"
      type = if key in @counters, do: "counter", else: "gauge"
      ["# TYPE ", name, " ", type, "\n", name, " ", Integer.to_string(value), "\n"]
    end
  end

  # ------------------------------------------------------------------ answers

  defp success(data) do
    {200, [{"content-type", "application/json"}], JSON.encode(%{status: "success", data: data})}
  end

  defp error(status, type, message) do
    body = JSON.encode(%{status: "error", errorType: type, error: message})
    {status, [{"content-type", "application/json"}], body}
  end

  # A PromQL answer: the engine's JSON as it is.
  defp query_answer({:ok, json}), do: {200, [{"content-type", "application/json"}], json}
  defp query_answer({:error, type, message}), do: error(400, type, message)

  # Prometheus says which parameter a query that does not parse came in.
  defp query_answer({:error, %Tms.Error{kind: :bad_data, message: message}}),
    do: error(400, "bad_data", ~s|invalid parameter "query": | <> message)

  defp query_answer({:error, e}), do: engine_error(e)

  # `{:ok, value}` as it is, an error as its answer.
  defp answer({:ok, _} = ok), do: ok
  defp answer({:error, e}), do: engine_error(e)

  defp engine_error(%Tms.Error{kind: kind, message: message}) do
    case kind do
      k when k in [:invalid_argument, :series_not_found, :cardinality_limit, :bad_data] ->
        error(400, "bad_data", message)

      :execution ->
        error(422, "execution", message)

      :timeout ->
        error(503, "timeout", message)

      :overloaded ->
        error(503, "unavailable", message)

      k when k in [:closed, :no_store] ->
        error(503, "unavailable", message)

      _ ->
        error(500, "internal", message)
    end
  end

  # ------------------------------------------------------------------ auth

  defp authorized?(_headers, nil), do: true

  defp authorized?(headers, token) do
    # The scheme is case-insensitive (RFC 7235), the token is not.
    case List.keyfind(headers, "authorization", 0) do
      {_, <<scheme::binary-7, given::binary>>} when byte_size(given) == byte_size(token) ->
        String.downcase(scheme) == "bearer " and constant_time_equal?(given, token)

      _ ->
        false
    end
  end

  # Compares every byte whatever the first difference, so the time taken
  # says nothing about how much of a guess was right.
  defp constant_time_equal?(a, b) do
    diff =
      Enum.zip_reduce(:binary.bin_to_list(a), :binary.bin_to_list(b), 0, fn x, y, acc ->
        Bitwise.bor(acc, Bitwise.bxor(x, y))
      end)

    diff == 0
  end

  defp form?(headers) do
    case List.keyfind(headers, "content-type", 0) do
      {_, type} -> String.starts_with?(type, "application/x-www-form-urlencoded")
      nil -> false
    end
  end
end
