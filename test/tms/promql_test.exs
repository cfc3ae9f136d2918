defmodule Tms.PromQLTest do
  # PromQL from Elixir and over HTTP. The language itself is checked by the
  # engine's run of Prometheus' own test files (cargo test); these tests
  # check what the NIF, `Tms` and the HTTP API add: shapes, time units,
  # errors, Prometheus' JSON and status codes.
  use Tms.Case, async: true
  alias Tms.Test.JSON

  setup ctx do
    {:ok, _} = Application.ensure_all_started(:inets)
    store = start_store(ctx, http: [port: 0])

    # Two counters, one sample every 10 s from t = 0 to 600 s.
    entries =
      for t <- 0..60, {code, per_step} <- [{"200", 10}, {"500", 1}] do
        {"http_requests_total", %{"code" => code, "job" => "api"}, t * per_step, t * 10_000}
      end

    :ok = Tms.write_batch(store, entries)
    {:ok, store: store, url: "http://127.0.0.1:#{Tms.HTTP.port(store)}"}
  end

  defp get(url) do
    {:ok, {{_, status, _}, _headers, body}} =
      :httpc.request(:get, {String.to_charlist(url), []}, [timeout: 10_000], body_format: :binary)

    {status, body}
  end

  test "instant vectors keep labels, aggregations drop them", %{store: store} do
    assert {:ok, %{type: :vector, result: result}} =
             Tms.promql(store, ~s|http_requests_total{code="500"}|, 300_000)

    assert [
             %{
               labels: %{"__name__" => "http_requests_total", "code" => "500", "job" => "api"},
               value: {300_000, 30.0}
             }
           ] = result

    assert {:ok, %{result: [%{labels: %{"job" => "api"}, value: {300_000, 1.1}}]}} =
             Tms.promql(store, "sum by (job) (rate(http_requests_total[1m]))", 300_000)
  end

  test "range queries answer a matrix at every step", %{store: store} do
    assert {:ok, %{type: :matrix, result: [%{labels: labels, points: points}]}} =
             Tms.promql_range(store, ~s|http_requests_total{code="200"} * 2|, 0, 60_000, 30_000)

    assert labels == %{"code" => "200", "job" => "api"}
    assert points == [{0, 0.0}, {30_000, 60.0}, {60_000, 120.0}]
  end

  test "scalars, NaN and infinities come back as in query_range", %{store: store} do
    assert {:ok, %{type: :scalar, result: {1_000, :nan}}} = Tms.promql(store, "0/0", 1_000)
    assert {:ok, %{type: :scalar, result: {1_000, :neg_infinity}}} = Tms.promql(store, "-1/0", 1_000)
    assert {:ok, %{type: :string, result: {1_000, "hi"}}} = Tms.promql(store, ~s|"hi"|, 1_000)
  end

  test "errors say what is wrong, with Prometheus' classes", %{store: store} do
    # A syntax error says where, in the message as Prometheus writes it and
    # in the details.
    assert {:error, %Tms.Error{kind: :bad_data, message: message, details: details}} =
             Tms.promql(store, "sum(rate(x[5m]))\n  / y z", 0)

    assert message == ~s|2:7: parse error: unexpected identifier "z"|
    assert %{line: 2, column: 7} = details

    assert {:error, %Tms.Error{kind: :bad_data, details: %{line: 1, column: 5}}} =
             Tms.promql(store, "sum(", 0)

    assert {:error, %Tms.Error{kind: :bad_data, message: message}} =
             Tms.promql(store, "mad_over_time(x[1m])", 0)

    assert message =~ "mad_over_time"
    assert {:error, %Tms.Error{kind: :bad_data}} = Tms.promql_range(store, "http_requests_total[1m]", 0, 1, 1)

    # Both codes match on `job` alone: one-to-one matching fails.
    assert {:error, %Tms.Error{kind: :execution, message: message}} =
             Tms.promql(store, "http_requests_total + on(job) http_requests_total", 300_000)

    assert message =~ "many-to-many"

    assert {:error, %Tms.Error{kind: :execution, message: message}} =
             Tms.promql(store, "http_requests_total", 300_000, max_samples: 3)

    assert message =~ "too many samples"
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.promql(store, "up", 0, bogus: 1)
    assert {:error, %Tms.Error{kind: :no_store}} = Tms.promql(:no_such_store, "up", 0)
  end

  test "times are in the store's unit", ctx do
    store = start_store(%{ctx | store: :"#{ctx.store}_s", dir: ctx.dir <> "_s"}, time_unit: :second)
    :ok = Tms.write_batch(store, for(t <- 0..10, do: {"g", %{"a" => "b"}, t * 1.0, t * 10}))
    assert {:ok, %{result: [%{value: {100, 10.0}}]}} = Tms.promql(store, "g", 100)
    # Durations in the query are wall-clock time whatever the unit.
    assert {:ok, %{result: [%{value: {100, 0.1}}]}} = Tms.promql(store, "deriv(g[1m])", 100)

    assert {:ok, %{result: [%{points: [{0, +0.0}, {50, 5.0}, {100, 10.0}]}]}} =
             Tms.promql_range(store, "g", 0, 100, 50)
  end

  test "the HTTP API answers Prometheus' JSON", %{url: url} do
    {200, body} = get(url <> "/api/v1/query?query=sum(http_requests_total)&time=300")

    assert body ==
             ~s|{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[300,"330"]}]}}|

    {200, body} =
      get(
        url <> "/api/v1/query_range?query=http_requests_total%7Bcode%3D%22500%22%7D&start=0&end=20.5&step=10s"
      )

    assert %{"data" => %{"resultType" => "matrix", "result" => [%{"values" => values}]}} = JSON.decode!(body)
    assert values == [[0, "0"], [10, "1"], [20, "2"]]
  end

  test "HTTP errors have Prometheus' status codes and shape", %{url: url} do
    {400, body} = get(url <> "/api/v1/query?query=sum(")
    assert %{"status" => "error", "errorType" => "bad_data", "error" => error} = JSON.decode!(body)
    assert error == ~s|invalid parameter "query": 1:5: parse error: unclosed left parenthesis|

    {422, body} = get(url <> "/api/v1/query?query=http_requests_total%2Bon(job)http_requests_total&time=300")
    assert %{"errorType" => "execution"} = JSON.decode!(body)

    {400, body} = get(url <> "/api/v1/query_range?query=up&start=10&end=0&step=1")
    assert JSON.decode!(body)["error"] =~ "end timestamp must not be before start time"

    {400, body} = get(url <> "/api/v1/query_range?query=up&start=0&end=100000&step=1")
    assert JSON.decode!(body)["error"] =~ "11,000 points"

    {400, _} = get(url <> "/api/v1/query_range?query=up&start=0&end=10&step=0")
    {400, _} = get(url <> "/api/v1/query_range?query=up&start=0&end=10")
    {400, _} = get(url <> "/api/v1/query?query=up&time=yesterday")
  end
end
