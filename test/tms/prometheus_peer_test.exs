defmodule Tms.PrometheusPeerTest do
  # A real Prometheus (Debian's 2.42) scrapes a real node_exporter every
  # second and remote_writes to a store's HTTP server; every sample
  # Prometheus stored, as its own query API answers, must be in Tms. And
  # VictoriaMetrics' vmagent, a second client, delivers the same series.
  use Tms.Case, async: false
  alias Tms.Test.JSON

  @moduletag timeout: 120_000

  defp run!(executable, args) do
    path =
      System.find_executable(executable) || flunk("#{executable} is not installed (bin/setup installs it)")

    port = Port.open({:spawn_executable, path}, [:binary, :exit_status, :stderr_to_stdout, args: args])
    {:os_pid, pid} = Port.info(port, :os_pid)
    on_exit(fn -> System.cmd("kill", ["-9", "#{pid}"], stderr_to_stdout: true) end)
    pid
  end

  defp get(url) do
    case :httpc.request(:get, {String.to_charlist(url), []}, [timeout: 5_000], body_format: :binary) do
      {:ok, {{_, status, _}, _, body}} -> {status, body}
      {:error, _} = e -> e
    end
  end

  defp wait_until(what, fun, tries \\ 200) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("timed out waiting for #{what}")
      true -> Process.sleep(100) && wait_until(what, fun, tries - 1)
    end
  end

  defp value("NaN"), do: :nan
  defp value("+Inf"), do: :infinity
  defp value("-Inf"), do: :neg_infinity
  defp value(text), do: text |> Float.parse() |> elem(0)

  test "every sample Prometheus stored reaches Tms through remote_write", ctx do
    {:ok, _} = Application.ensure_all_started(:inets)
    store = start_store(ctx, http: [port: 0])
    tms_port = Tms.HTTP.port(store)
    node_port = free_port()
    prom_port = free_port()
    run!("prometheus-node-exporter", ["--web.listen-address=127.0.0.1:#{node_port}"])

    config = Path.join(ctx.dir, "prometheus.yml")

    File.write!(config, """
    global:
      scrape_interval: 1s
    scrape_configs:
      - job_name: node
        static_configs:
          - targets: ['127.0.0.1:#{node_port}']
    remote_write:
      - url: http://127.0.0.1:#{tms_port}/api/v1/write
        queue_config:
          batch_send_deadline: 500ms
          max_samples_per_send: 2000
    """)

    prom = "http://127.0.0.1:#{prom_port}"

    run!("prometheus", [
      "--config.file=#{config}",
      "--storage.tsdb.path=#{Path.join(ctx.dir, "prometheus")}",
      "--web.listen-address=127.0.0.1:#{prom_port}"
    ])

    wait_until("Prometheus to scrape node_exporter", fn ->
      case get(prom <> "/api/v1/query?query=up") do
        {200, body} -> body =~ ~s("value":[) and body =~ ~s(,"1"])
        _ -> false
      end
    end)

    # A few more scrapes.
    Process.sleep(4_000)
    at_ms = System.os_time(:millisecond) - 1_500
    query = URI.encode_www_form(~s({job="node"}[1m]))
    time = :erlang.float_to_binary(at_ms / 1000, decimals: 3)
    {200, body} = get(prom <> "/api/v1/query?query=#{query}&time=#{time}")
    %{"status" => "success", "data" => %{"resultType" => "matrix", "result" => result}} = JSON.decode!(body)

    expected =
      for %{"metric" => metric, "values" => values} <- result do
        {name, labels} = Map.pop!(metric, "__name__")
        points = for [ts, v] <- values, do: {round(ts * 1000), value(v)}
        {name, labels, points}
      end

    samples = expected |> Enum.map(fn {_, _, p} -> length(p) end) |> Enum.sum()
    assert length(expected) > 100, "node_exporter exposes hundreds of series"
    assert samples > 2 * length(expected), "several scrapes of each"
    from = expected |> Enum.flat_map(fn {_, _, p} -> Enum.map(p, &elem(&1, 0)) end) |> Enum.min()

    in_tms = fn {name, labels, _} ->
      case Tms.query_range(store, name, labels, from, at_ms) do
        {:ok, found} -> Enum.find_value(found, [], &(&1.labels == labels && &1.points))
        {:error, _} -> []
      end
    end

    # remote_write sends within its 500 ms deadline; allow for retries.
    wait_until("Tms to hold every sample", fn ->
      Enum.all?(expected, &(length(in_tms.(&1)) >= length(elem(&1, 2))))
    end)

    for {name, labels, points} = series <- expected do
      assert in_tms.(series) == points, "#{name} #{inspect(labels)}"
    end

    IO.puts("  Prometheus -> Tms: #{length(expected)} series, #{samples} samples, all equal")
  end

  test "vmagent, a second client, delivers the same series as Prometheus", ctx do
    {:ok, _} = Application.ensure_all_started(:inets)
    store = start_store(ctx, http: [port: 0])
    write_url = "http://127.0.0.1:#{Tms.HTTP.port(store)}/api/v1/write"
    node_port = free_port()
    run!("prometheus-node-exporter", ["--web.listen-address=127.0.0.1:#{node_port}"])

    scrape =
      "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:#{node_port}']\n"

    prom_config = Path.join(ctx.dir, "prometheus.yml")

    File.write!(prom_config, """
    global:
      scrape_interval: 1s
      external_labels: {agent: prometheus}
    #{scrape}remote_write:
      - url: #{write_url}
        queue_config: {batch_send_deadline: 500ms}
    """)

    agent_config = Path.join(ctx.dir, "vmagent.yml")
    File.write!(agent_config, "global:\n  scrape_interval: 1s\n" <> scrape)

    run!("prometheus", [
      "--config.file=#{prom_config}",
      "--storage.tsdb.path=#{Path.join(ctx.dir, "prometheus")}",
      "--web.listen-address=127.0.0.1:#{free_port()}"
    ])

    run!("vmagent", [
      "-promscrape.config=#{agent_config}",
      "-remoteWrite.url=#{write_url}",
      "-remoteWrite.label=agent=vmagent",
      "-remoteWrite.flushInterval=500ms",
      "-remoteWrite.tmpDataPath=#{Path.join(ctx.dir, "vmagent")}",
      "-httpListenAddr=127.0.0.1:#{free_port()}",
      "-loggerLevel=ERROR"
    ])

    # node_exporter's series as each agent delivered them, without the agent label.
    delivered = fn agent ->
      {:ok, metrics} = Tms.metrics(store)

      for metric <- metrics,
          String.starts_with?(metric, "node_"),
          {:ok, series} = Tms.series(store, metric, %{"agent" => agent}),
          labels <- series,
          into: MapSet.new(),
          do: {metric, Map.delete(labels, "agent")}
    end

    wait_until("both agents to deliver node_exporter's series", fn ->
      by_prometheus = delivered.("prometheus")
      MapSet.size(by_prometheus) > 100 and MapSet.equal?(by_prometheus, delivered.("vmagent"))
    end)

    n = MapSet.size(delivered.("vmagent"))
    IO.puts("  vmagent and Prometheus -> Tms: the same #{n} node_exporter series")
  end
end
