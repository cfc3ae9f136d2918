defmodule Tms.HTTPTest do
  # The HTTP API over its real server: imports of every format, the
  # series endpoints, Prometheus' error answers, limits and the token.
  use Tms.Case, async: true
  alias Tms.Test.{JSON, RemoteWrite}

  setup do
    {:ok, _} = Application.ensure_all_started(:inets)
    :ok
  end

  defp start_http(ctx, http_opts, store_opts \\ []) do
    store = start_store(ctx, [http: Keyword.merge([port: 0], http_opts)] ++ store_opts)
    "http://127.0.0.1:#{Tms.HTTP.port(store)}"
  end

  # {status, headers, body}; headers with lower-case names.
  defp request(method, url, body \\ nil, headers \\ []) do
    {type, headers} = List.keytake(headers, "content-type", 0) || {{nil, "application/octet-stream"}, headers}
    headers = for {k, v} <- headers, do: {String.to_charlist(k), String.to_charlist(v)}

    req =
      if body,
        do: {String.to_charlist(url), headers, String.to_charlist(elem(type, 1)), body},
        else: {String.to_charlist(url), headers}

    {:ok, {{_, status, _}, resp_headers, resp}} =
      :httpc.request(method, req, [timeout: 10_000], body_format: :binary)

    {status, Map.new(resp_headers, fn {k, v} -> {List.to_string(k), List.to_string(v)} end), resp}
  end

  # One request on its own connection, read raw: :httpc retries a 503 that
  # carries Retry-After by itself, and this is what a test must see.
  defp raw_post(url, body) do
    %URI{port: port, path: path} = URI.parse(url)
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])

    :ok =
      :gen_tcp.send(socket, [
        "POST #{path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n",
        "content-length: #{byte_size(body)}\r\n\r\n",
        body
      ])

    response = read_all(socket, "")
    [head, resp_body] = String.split(response, "\r\n\r\n", parts: 2)
    ["HTTP/1.1 " <> <<status::binary-3>> <> _ | lines] = String.split(head, "\r\n")

    headers =
      Map.new(lines, fn line ->
        [k, v] = String.split(line, ":", parts: 2)
        {String.downcase(k), String.trim(v)}
      end)

    {String.to_integer(status), headers, resp_body}
  end

  defp read_all(socket, acc) do
    case :gen_tcp.recv(socket, 0, 10_000) do
      {:ok, data} -> read_all(socket, acc <> data)
      {:error, :closed} -> acc
    end
  end

  defp json(url), do: url |> then(&request(:get, &1)) |> elem(2) |> JSON.decode!()

  defp match(selector), do: "match%5B%5D=" <> URI.encode_www_form(selector)

  test "remote_write, text and JSON lines land, and the series endpoints find them", ctx do
    url = start_http(ctx, [])

    rw =
      RemoteWrite.body([
        {[{"__name__", "up"}, {"job", "node"}, {"instance", "a:9100"}], [{1.0, 1_000}, {0.0, 2_000}]},
        {[{"__name__", "up"}, {"job", "node"}, {"instance", "b:9100"}], [{1.0, 1_000}]}
      ])

    assert {204, _, ""} = request(:post, url <> "/api/v1/write", rw)

    text = "load{host=\"h1\"} 0.5 1000\nload{host=\"h2\"} 1.5\n"

    assert {204, _, _} =
             request(:post, url <> "/api/v1/import/prometheus?extra_label=env=dev&timestamp=5000", text)

    lines = ~s({"metric":{"__name__":"temp","room":"a"},"values":[20.5,21],"timestamps":[1000,2000]}\n)
    assert {204, _, _} = request(:post, url <> "/api/v1/import", lines)

    assert {:ok, [%{points: [{1_000, 1.0}, {2_000, 0.0}]}]} =
             Tms.query_range(ctx.store, "up", %{"instance" => "a:9100"}, 0, 10_000)

    assert {:ok, [%{labels: %{"env" => "dev"}, points: [{5_000, 1.5}]}]} =
             Tms.query_range(ctx.store, "load", %{"host" => "h2"}, 0, 10_000)

    assert %{"status" => "success", "data" => series} = json(url <> "/api/v1/series?" <> match("up"))
    assert Enum.map(series, & &1["instance"]) == ["a:9100", "b:9100"]
    assert hd(series)["__name__"] == "up"

    assert %{"data" => [%{"__name__" => "load", "host" => "h1"}]} =
             json(url <> "/api/v1/series?" <> match(~s({__name__=~"lo.*",host!="h2"})))

    # A POSTed form works as Grafana sends it.
    {200, _, body} =
      request(:post, url <> "/api/v1/series", match(~s(temp{room="a"})), [
        {"content-type", "application/x-www-form-urlencoded"}
      ])

    assert %{"data" => [%{"room" => "a"}]} = JSON.decode!(body)

    assert %{"data" => names} = json(url <> "/api/v1/labels")
    assert names == ~w(__name__ env host instance job room)
    assert %{"data" => ["a:9100", "b:9100"]} = json(url <> "/api/v1/label/instance/values")
    assert %{"data" => ["load", "temp", "up"]} = json(url <> "/api/v1/label/__name__/values")

    assert %{"data" => ["h1"]} = json(url <> "/api/v1/label/host/values?" <> match(~s(load{host="h1"})))

    assert %{"data" => %{"version" => "2.42.0"}} = json(url <> "/api/v1/status/buildinfo")
    assert {200, _, "OK"} = request(:get, url <> "/health")
    {200, _, metrics} = request(:get, url <> "/metrics")
    assert metrics =~ "# TYPE tms_series gauge\ntms_series 5\n"
    assert metrics =~ "# TYPE tms_cache_hits counter\n"
  end

  test "start and end narrow the series endpoints to series with data in the range", ctx do
    url = start_http(ctx, [])
    assert {204, _, _} = request(:post, url <> "/api/v1/import/prometheus", ~s(old{a="1"} 1 1000\n))
    # One series flushed to a segment, the other still buffered.
    :ok = Tms.flush(ctx.store)
    assert {204, _, _} = request(:post, url <> "/api/v1/import/prometheus", ~s(new{b="2"} 2 100000\n))

    names = fn query ->
      json(url <> "/api/v1/series?" <> match(~s({__name__=~".+"})) <> query)["data"]
      |> Enum.map(& &1["__name__"])
    end

    assert names.("") == ["new", "old"]
    assert names.("&start=50&end=200") == ["new"]
    assert names.("&start=0&end=10") == ["old"]
    assert names.("&end=0.5") == []
    assert names.("&start=1970-01-01T00:00:01Z&end=1970-01-01T00:00:01Z") == ["old"]
    assert json(url <> "/api/v1/labels?start=50")["data"] == ["__name__", "b"]
    assert json(url <> "/api/v1/label/a/values?end=10")["data"] == ["1"]
    assert json(url <> "/api/v1/label/a/values?start=10")["data"] == []

    assert {:ok, []} = Tms.series(ctx.store, "old", %{}, to: 999)
    assert {:ok, [%{"a" => "1"}]} = Tms.series(ctx.store, "old", %{}, from: 1000, to: 1000)
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.series(ctx.store, "old", %{}, from: "x")
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.series(ctx.store, "old", %{}, to: 2 ** 70)
    assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.series(ctx.store, "old", %{}, since: 1)
  end

  test "export streams JSON lines that import back into the same series and samples", ctx do
    url = start_http(ctx, [])

    :ok =
      Tms.write_batch(ctx.store, [
        {"cpu", %{"host" => "a", "note" => "q\"uote"}, 1.5, 1_000},
        {"cpu", %{"host" => "a", "note" => "q\"uote"}, :nan, 2_000},
        {"cpu", %{"host" => "b"}, 3.0, 1_000},
        {"mem", %{"host" => "a"}, :infinity, 1_500},
        {"mem", %{"host" => "a"}, -2.0e-300, 9_000}
      ])

    # (Sent chunked; :httpc joins the chunks.)
    {200, _, body} = request(:get, url <> "/api/v1/export?" <> match(~s({host=~"a|b"})))
    assert length(String.split(body, "\n", trim: true)) == 3

    # Into a second store, through the import endpoint's function.
    copy = start_store(%{ctx | store: :"#{ctx.store}_copy", dir: ctx.dir <> "_copy"})
    assert {204, _, _} = Tms.HTTP.handle(copy, "POST", "/api/v1/import", "", [], body)

    for metric <- ["cpu", "mem"] do
      assert Tms.query_range(copy, metric, %{}, 0, 10_000) ==
               Tms.query_range(ctx.store, metric, %{}, 0, 10_000)
    end

    # start and end narrow it (seconds with decimals, or RFC 3339).
    {200, _, body} =
      request(:get, url <> "/api/v1/export?" <> match("mem") <> "&start=1.4&end=1970-01-01T00:00:02Z")

    assert body == ~s({"metric":{"__name__":"mem","host":"a"},"values":["+Inf"],"timestamps":[1500]}\n)
    assert {400, _, _} = request(:get, url <> "/api/v1/export?" <> match("mem") <> "&start=yesterday")
  end

  test "an export that fails on its way ends in an abort, never in a short answer that looks whole", ctx do
    store = start_store(ctx)
    {:ok, _} = Tms.import(store, :prometheus_text, "a 1 1000\nb 2 1000\n")
    query = match(~s({__name__=~".+"})) <> "&start=0"
    {200, _, {:chunks, stream}} = Tms.HTTP.handle(store, "GET", "/api/v1/export", query, [], "")
    assert [[a], [b]] = Enum.to_list(stream)
    assert IO.iodata_to_binary([a, b]) =~ ~r/^\{"metric":\{"__name__":"a"\}.*\n\{"metric":\{"__name__":"b"\}/s

    # Run again with the store gone: the first query fails, and the abort is
    # the last element (nothing after it).
    :ok = stop_supervised(ctx.store)
    assert [{:abort, reason}] = Enum.to_list(stream)
    assert reason =~ "export of a failed"
  end

  test "bad requests get Prometheus' error answers and leave the store unharmed", ctx do
    url = start_http(ctx, max_body_bytes: 10_000)
    assert {204, _, _} = request(:post, url <> "/api/v1/import/prometheus", "m 1 1000\n")

    error = fn {status, _, body} -> {status, JSON.decode!(body)} end

    assert {404, %{"status" => "error", "errorType" => "not_found"}} =
             error.(request(:get, url <> "/api/v1/nothing"))

    assert {405, headers, _} = request(:get, url <> "/api/v1/write")
    assert headers["allow"] == "POST"

    assert {400, %{"errorType" => "bad_data", "error" => snappy}} =
             error.(request(:post, url <> "/api/v1/write", "not snappy"))

    assert snappy =~ "snappy"

    assert {400, %{"error" => message}} =
             error.(request(:post, url <> "/api/v1/import/prometheus", "ok 1\nbad{ 1\n"))

    assert message =~ "line 2"

    assert {400, %{"error" => message}} =
             error.(request(:post, url <> "/api/v1/import/prometheus?extra_label=novalue", "m 1\n"))

    assert message =~ "extra_label"
    assert {400, _} = error.(request(:get, url <> "/api/v1/series"))
    assert {400, _} = error.(request(:get, url <> "/api/v1/series?" <> match("m{a=")))
    assert {400, _} = error.(request(:get, url <> "/api/v1/series?" <> match(~s(m{a=~"("}))))
    assert {413, _, _} = request(:post, url <> "/api/v1/import", :binary.copy("x", 20_000))

    # Nothing of the rejected bodies was written; the first sample is there.
    assert {:ok, ["m"]} = Tms.metrics(ctx.store)
    assert {:ok, [%{points: [{1_000, 1.0}]}]} = Tms.query_range(ctx.store, "m", %{}, 0, 10_000)
    assert {200, _, "OK"} = request(:get, url <> "/health")
  end

  test "an overloaded store answers 503 with Retry-After, so Prometheus retries", ctx do
    url = start_http(ctx, [], max_buffered_points: 100, flush_interval: 600_000)
    body = fn from -> for(t <- from..(from + 59), into: "", do: "m #{t} #{t}\n") end
    assert {204, _, _} = raw_post(url <> "/api/v1/import/prometheus", body.(0))
    assert {503, headers, error} = raw_post(url <> "/api/v1/import/prometheus", body.(100))
    assert headers["retry-after"] == "1"
    assert %{"errorType" => "unavailable"} = JSON.decode!(error)
    :ok = Tms.flush(ctx.store)
    assert {204, _, _} = raw_post(url <> "/api/v1/import/prometheus", body.(100))
  end

  test "a slow client is cut off, and connections past max_clients are refused cleanly", ctx do
    url = start_http(ctx, max_clients: 20, request_timeout: 300)
    port = URI.parse(url).port
    connect = fn -> elem(:gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false]), 1) end

    # Half a request head, then nothing (slow-loris): closed after the timeout.
    loris = connect.()
    :ok = :gen_tcp.send(loris, "POST /api/v1/write HTTP/1.1\r\nhost: x\r\n")
    assert {:error, :closed} = :gen_tcp.recv(loris, 0, 2_000)

    # A body announced but trickled: cut off at 1 KB/s (here 2.3 s).
    trickle = connect.()
    :ok = :gen_tcp.send(trickle, "POST /api/v1/write HTTP/1.1\r\ncontent-length: 2000\r\n\r\nab")
    assert {:ok, "HTTP/1.1 408" <> _} = :gen_tcp.recv(trickle, 0, 5_000)

    # A client that expects 100-continue gets it, then its answer.
    expecting = connect.()

    :ok =
      :gen_tcp.send(
        expecting,
        "POST /api/v1/import HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
      )

    assert {:ok, "HTTP/1.1 100 Continue\r\n\r\n"} = :gen_tcp.recv(expecting, 0, 2_000)
    :ok = :gen_tcp.send(expecting, "\n\n")
    assert {:ok, "HTTP/1.1 204" <> _} = :gen_tcp.recv(expecting, 0, 2_000)
    :gen_tcp.close(expecting)
    # Its slot is free once the server sees the close.
    Process.sleep(100)

    # Too many headers: 400, closed.
    crowded = connect.()
    :ok = :gen_tcp.send(crowded, ["GET /health HTTP/1.1\r\n", List.duplicate("a: b\r\n", 150), "\r\n"])
    assert {:ok, "HTTP/1.1 400" <> _} = :gen_tcp.recv(crowded, 0, 2_000)
    :gen_tcp.close(crowded)

    # HEAD gets the head alone; HTTP/1.0 is closed after its answer.
    head = connect.()
    :ok = :gen_tcp.send(head, "HEAD /health HTTP/1.1\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
    Process.sleep(200)
    {:ok, both} = :gen_tcp.recv(head, 0, 2_000)
    assert [_, "HTTP/1.1 200 OK\r\nconnection: close" <> rest] = String.split(both, "\r\n\r\n", parts: 2)
    assert String.ends_with?(rest, "\r\n\r\nOK")
    assert {:error, :closed} = :gen_tcp.recv(head, 0, 2_000)
    Process.sleep(100)

    # 60 connections at once against a limit of 20: each is answered, the
    # ones past the limit with 503, and the store serves on afterwards.
    statuses =
      1..60
      |> Enum.map(fn _ -> connect.() end)
      |> Enum.map(fn socket ->
        :ok = :gen_tcp.send(socket, "GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        socket
      end)
      |> Enum.map(fn socket ->
        {:ok, <<"HTTP/1.1 ", status::binary-3, _::binary>>} = :gen_tcp.recv(socket, 0, 5_000)
        :gen_tcp.close(socket)
        status
      end)
      |> Enum.frequencies()

    assert statuses["200"] >= 20
    assert statuses["200"] + Map.get(statuses, "503", 0) == 60
    assert {200, _, "OK"} = request(:get, url <> "/health")
  end

  test "1,000 connections at once: each answered or refused, every acknowledged sample there", ctx do
    url = start_http(ctx, max_clients: 400)
    port = URI.parse(url).port
    parent = self()

    # Each connection imports its own sample; a refused one (503) wrote
    # nothing, an acknowledged one (204) must be in the store.
    clients =
      for i <- 1..1_000 do
        spawn_link(fn ->
          {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false], 10_000)
          send(parent, {:connected, self()})
          receive do: (:go -> :ok)
          body = "conn{i=\"#{i}\"} #{i} 1000\n"

          request = [
            "POST /api/v1/import/prometheus HTTP/1.1\r\nhost: x\r\n",
            "content-length: #{byte_size(body)}\r\n\r\n",
            body
          ]

          status =
            with :ok <- :gen_tcp.send(socket, request),
                 {:ok, <<"HTTP/1.1 ", status::binary-3, _::binary>>} <- :gen_tcp.recv(socket, 0, 30_000) do
              status
            else
              # Refused before the request was read: the 503 came first, or
              # the close raced the send.
              {:error, reason} -> reason
            end

          send(parent, {:status, self(), i, status})
        end)
      end

    for pid <- clients, do: assert_receive({:connected, ^pid}, 30_000)
    for pid <- clients, do: send(pid, :go)
    results = for pid <- clients, do: receive(do: ({:status, ^pid, i, status} -> {i, status}))

    statuses = results |> Enum.map(&elem(&1, 1)) |> Enum.frequencies()
    assert Map.keys(statuses) -- ["204", "503", :closed, :econnreset] == [], inspect(statuses)
    assert statuses["204"] >= 400

    acknowledged = for {i, "204"} <- results, into: MapSet.new(), do: "#{i}"
    assert {:ok, series} = Tms.query_range(ctx.store, "conn", %{}, 0, 2_000)
    assert MapSet.new(series, & &1.labels["i"]) == acknowledged

    assert Enum.all?(series, fn %{labels: %{"i" => i}, points: [{1_000, v}]} ->
             v == String.to_integer(i) * 1.0
           end)

    assert {200, _, "OK"} = request(:get, url <> "/health")
  end

  test "requests pipelined in one send or cut into pieces anywhere are read the same", ctx do
    url = start_http(ctx, [])
    port = URI.parse(url).port
    {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])

    post = fn body ->
      "POST /api/v1/import/prometheus HTTP/1.1\r\nhost: x\r\ncontent-length: #{byte_size(body)}\r\n\r\n" <>
        body
    end

    requests = [
      post.("m 1 1000\n"),
      "\r\n",
      post.("m 2 2000\n"),
      "GET /health HTTP/1.1\r\n\r\n",
      post.("m 3 3000\n")
    ]

    wire = IO.iodata_to_binary(requests)

    # All at once, then the same bytes (later samples) a byte at a time and
    # in pieces of 7, whose cuts fall inside heads, headers and bodies.
    :ok = :gen_tcp.send(socket, wire)
    assert read_statuses(socket, 4) == ["204", "204", "200", "204"]

    for size <- [1, 7] do
      wire = String.replace(wire, " 1000\n", " 1#{size}00\n")

      for piece <- chunk_bytes(wire, size) do
        :ok = :gen_tcp.send(socket, piece)
      end

      assert read_statuses(socket, 4) == ["204", "204", "200", "204"]
    end

    assert {:ok, [%{points: points}]} = Tms.query_range(ctx.store, "m", %{}, 0, 10_000)
    assert points == [{1_000, 1.0}, {1_100, 1.0}, {1_700, 1.0}, {2_000, 2.0}, {3_000, 3.0}]

    # A blank line cut between its CR and LF, after a body and before a
    # request; a head with bare LF line ends; HEAD of a streamed answer.
    for piece <- [post.("m 4 4000\n"), "\r", "\nGET /health HTTP/1.1\r\n\r\n", "\r", "\n"] do
      :ok = :gen_tcp.send(socket, piece)
      Process.sleep(20)
    end

    :ok = :gen_tcp.send(socket, "GET /health HTTP/1.1\nhost: x\n\n")
    assert read_statuses(socket, 3) == ["204", "200", "200"]

    :ok =
      :gen_tcp.send(socket, "HEAD /api/v1/export?match%5B%5D=m HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n")

    answers = recv_until(socket, "", &String.ends_with?(&1, "\r\n\r\nOK"))
    assert [head, _] = String.split(answers, "\r\n\r\n", parts: 2)
    assert head =~ "transfer-encoding: chunked"
    refute head =~ "content-length"

    # A head past 128 KB is refused, and the connection closed.
    :ok = :gen_tcp.send(socket, ["GET /health HTTP/1.1\r\nx: ", :binary.copy("a", 140_000), "\r\n\r\n"])
    assert {:ok, "HTTP/1.1 400" <> _} = :gen_tcp.recv(socket, 0, 5_000)
    assert {:error, :closed} = :gen_tcp.recv(socket, 0, 5_000)
  end

  defp recv_until(socket, buffer, done?) do
    if done?.(buffer) do
      buffer
    else
      {:ok, data} = :gen_tcp.recv(socket, 0, 5_000)
      recv_until(socket, buffer <> data, done?)
    end
  end

  defp chunk_bytes(binary, size) when byte_size(binary) <= size, do: [binary]

  defp chunk_bytes(binary, size) do
    <<piece::binary-size(size), rest::binary>> = binary
    [piece | chunk_bytes(rest, size)]
  end

  # The status codes of the next `n` answers on `socket`.
  defp read_statuses(socket, n), do: read_statuses(socket, n, "", [])

  defp read_statuses(_socket, 0, _buffer, acc), do: Enum.reverse(acc)

  defp read_statuses(socket, n, buffer, acc) do
    with [head, rest] <- :binary.split(buffer, "\r\n\r\n"),
         "HTTP/1.1 " <> <<status::binary-3, _::binary>> <- head do
      length = Regex.run(~r/content-length: (\d+)/, head, capture: :all_but_first) || ["0"]
      length = String.to_integer(hd(length))

      if byte_size(rest) >= length do
        <<_::binary-size(length), rest::binary>> = rest
        read_statuses(socket, n - 1, rest, [status | acc])
      else
        {:ok, data} = :gen_tcp.recv(socket, 0, 5_000)
        read_statuses(socket, n, buffer <> data, acc)
      end
    else
      _ ->
        {:ok, data} = :gen_tcp.recv(socket, 0, 5_000)
        read_statuses(socket, n, buffer <> data, acc)
    end
  end

  test "with a token, every request must carry it", ctx do
    url = start_http(ctx, token: "s3cret")
    assert {401, _, body} = request(:get, url <> "/health")
    assert %{"errorType" => "unauthorized"} = JSON.decode!(body)
    assert {401, _, _} = request(:get, url <> "/health", nil, [{"authorization", "Bearer s3cre"}])
    assert {401, _, _} = request(:get, url <> "/health", nil, [{"authorization", "Bearer s3creT"}])
    assert {200, _, "OK"} = request(:get, url <> "/health", nil, [{"authorization", "Bearer s3cret"}])
    assert {200, _, "OK"} = request(:get, url <> "/health", nil, [{"authorization", "bearer s3cret"}])
  end

  test "handle/7 answers without a server, for a Plug or Phoenix router", ctx do
    store = start_store(ctx)
    assert {204, [], ""} = Tms.HTTP.handle(store, "POST", "/api/v1/import/prometheus", "", [], "m 1 5\n")
    {200, _, body} = Tms.HTTP.handle(store, "GET", "/api/v1/label/__name__/values", "", [], "")
    assert JSON.decode!(IO.iodata_to_binary(body)) == %{"status" => "success", "data" => ["m"]}
  end

  test "bad http options are refused at start", ctx do
    for bad <- [[], [port: -1], [port: 80, ip: :nope], [port: 80, token: ""], [port: 80, colour: 1]] do
      assert_raise ArgumentError, ~r/:http/, fn ->
        Tms.child_spec(name: ctx.store, data_dir: ctx.dir, http: bad)
      end
    end
  end
end
