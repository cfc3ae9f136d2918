# The latency of one small HTTP request to Tms, through the client the
# other HTTP benchmarks use (bench/support/http_client.ex), on one
# keep-alive connection: GET /health, which does no work but the round trip
# and the server's request handling, and the PromQL range query
# bench/promql.exs runs for `absent`, over an hour at a 15 s step. What
# separates the two is the query's own cost; /health is what every answer
# over this server costs at least.
#
#   MIX_ENV=bench mix run bench/http_latency.exs

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/http_client.ex", __DIR__)
alias Tms.Bench.HTTPClient
{:ok, _} = Application.ensure_all_started(:tms)

dir = Path.join(System.tmp_dir!(), "tms_bench_http_latency")
File.rm_rf!(dir)
{:ok, _} = Tms.start_link(name: :latency, data_dir: dir, http: [port: 0])
{:ok, _} = Tms.import(:latency, :prometheus_text, "node_load1{host=\"a\"} 1 1700000000000\n")

tms = HTTPClient.connect(Tms.HTTP.port(:latency))

absent =
  "/api/v1/query_range?query=" <>
    URI.encode_www_form("absent(node_no_such_metric)") <> "&start=1699996400&end=1700000000&step=15"

Tms.Bench.run(
  %{
    "GET /health" => fn -> {200, _} = HTTPClient.get(tms, "/health") end,
    "absent(...) over 1 h, 15 s step" => fn -> {200, _} = HTTPClient.get(tms, absent) end
  },
  warmup: 1,
  time: 3,
  title: "http latency"
)

:ok = Tms.stop(:latency)
File.rm_rf!(dir)
