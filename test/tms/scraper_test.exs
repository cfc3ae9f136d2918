defmodule Tms.ScraperTest do
  # The scraper against a real node_exporter, a target that exposes a
  # clashing label, and one that is down.
  use Tms.Case, async: false

  @moduletag timeout: 60_000

  # A one-page HTTP server: every request gets `body`.
  defp serve(body) do
    {:ok, listen} = :gen_tcp.listen(0, [:binary, ip: {127, 0, 0, 1}, active: false, reuseaddr: true])
    {:ok, port} = :inet.port(listen)

    pid =
      spawn_link(fn ->
        Stream.repeatedly(fn -> :gen_tcp.accept(listen) end)
        |> Enum.each(fn {:ok, socket} ->
          {:ok, _request} = :gen_tcp.recv(socket, 0, 5_000)

          :gen_tcp.send(
            socket,
            "HTTP/1.1 200 OK\r\ncontent-length: #{byte_size(body)}\r\nconnection: close\r\n\r\n#{body}"
          )

          :gen_tcp.close(socket)
        end)
      end)

    on_exit(fn -> Process.exit(pid, :kill) end)
    "127.0.0.1:#{port}"
  end

  defp points(store, metric, labels) do
    case Tms.query_range(store, metric, labels, 0, System.os_time(:millisecond) + 60_000) do
      {:ok, [%{points: points}]} -> points
      _ -> []
    end
  end

  test "targets are scraped with job and instance, up says which answered", ctx do
    node_port = free_port()
    exe = System.find_executable("prometheus-node-exporter") || flunk("bin/setup installs node_exporter")

    port =
      Port.open({:spawn_executable, exe}, [:binary, args: ["--web.listen-address=127.0.0.1:#{node_port}"]])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> System.cmd("kill", ["-9", "#{os_pid}"]) end)
    node = "127.0.0.1:#{node_port}"
    clash = serve(~s(app_info{job="app",instance="inner"} 1\n))
    down = "127.0.0.1:#{free_port()}"
    store = start_store(ctx)
    Process.sleep(300)

    start_supervised!(
      {Tms.Scraper,
       store: store,
       jobs: [
         %{job: "node", targets: [node], interval: 400, labels: %{"env" => "test"}},
         %{job: "apps", targets: [clash, down], interval: 400, timeout: 300}
       ]}
    )

    Process.sleep(1_500)
    up = points(store, "up", %{"job" => "node", "instance" => node, "env" => "test"})
    assert length(up) >= 2 and Enum.all?(up, &(elem(&1, 1) == 1.0))

    # node_exporter's own series, and how many samples each scrape held.
    assert [_ | _] = points(store, "node_exporter_build_info", %{"job" => "node", "instance" => node})
    [{ts, scraped} | _] = points(store, "scrape_samples_scraped", %{"job" => "node"})
    assert scraped > 100

    {:ok, series} = Tms.series(store, "node_exporter_build_info", %{"job" => "node"})
    assert [%{"env" => "test"}] = series

    # Samples of one scrape carry its start time.
    assert [{^ts, _}] =
             Enum.filter(points(store, "node_exporter_build_info", %{"job" => "node"}), &(elem(&1, 0) == ts))

    # The target's labels win; the exposed ones are kept as exported_*.
    assert {:ok,
            [
              %{
                "exported_instance" => "inner",
                "exported_job" => "app",
                "instance" => ^clash,
                "job" => "apps"
              }
            ]} = Tms.series(store, "app_info")

    # A target that is down: up 0, and nothing else about it.
    assert [_ | _] = down_up = points(store, "up", %{"instance" => down})
    assert Enum.all?(down_up, &(elem(&1, 1) == 0.0))
    assert [] = points(store, "scrape_duration_seconds", %{"instance" => down})
  end

  test "a store's scrape: option starts its own scraper", ctx do
    target = serve("m 1\n")
    store = start_store(ctx, scrape: [%{job: "self", targets: [target], interval: 200}])
    Process.sleep(700)
    assert [_ | _] = points(store, "m", %{"job" => "self", "instance" => target})

    assert_raise ArgumentError, ~r/interval/, fn ->
      Tms.child_spec(name: :x, data_dir: ctx.dir, scrape: [%{job: "a", targets: ["a:1"], interval: 0}])
    end
  end

  test "bad jobs are refused at start" do
    for bad <- [
          %{targets: ["a:1"]},
          %{job: "x", targets: ["no-port"]},
          %{job: "x", targets: ["a:1"], interval: 0},
          :nope
        ] do
      assert_raise ArgumentError, fn -> Tms.Scraper.start_link(store: :s, jobs: [bad]) end
    end
  end
end
