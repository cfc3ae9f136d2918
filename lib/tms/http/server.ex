defmodule Tms.HTTP.Server do
  @moduledoc false
  # Serves Tms.HTTP.handle/7 over HTTP/1.1 with keep-alive, in the store's
  # supervision tree: a listener that owns the socket and accepts, and one
  # process per connection under a Task.Supervisor (stopped with the store).
  #
  # Why not :httpd: it hands every request body over as a charlist. Measured
  # with bench/http.exs, a remote_write body of 2,000 samples (300 KB) became
  # 4.8 MB of list and its garbage, and :httpd took remote_write to 0.37x of
  # VictoriaMetrics' rate. Here a request head is read whole, in as few
  # receives as it arrives in, and parsed by the BEAM's own HTTP parser
  # (`:erlang.decode_packet/3`) without a receive per header; the body is
  # read as one binary of exactly Content-Length bytes; bytes a pipelining
  # client sent past a request are kept for the next; the response goes out
  # in one send with TCP_NODELAY.
  #
  # Limits: a request head (at most 100 headers, 128 KB in all) must arrive
  # within request_timeout (10 s) of its first byte, and a body at no less
  # than 1 KB/s, read in 256 KB chunks (slow clients cannot hold a
  # connection process, and memory follows what arrived); bodies over
  # max_body_bytes get 413; chunked request bodies get 411 (Prometheus,
  # vmagent and curl send a length); past max_clients open connections a
  # new one gets 503 and is closed; an answer the client does not read for
  # 30 s closes the connection; an idle keep-alive connection is closed
  # after 120 s. HEAD is GET without the body; HTTP/1.0 clients get whole
  # answers and keep-alive only when they ask.

  use GenServer
  require Logger

  @idle_timeout 120_000
  @max_head_bytes 131_072
  @max_headers 100
  @body_chunk 262_144
  @min_bytes_per_second 1_024

  def child_spec(config) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [config]}, type: :supervisor}
  end

  def start_link(config) do
    children = [
      {Task.Supervisor, name: Module.concat(config.name, HTTPConnections)},
      %{
        id: :listener,
        start: {GenServer, :start_link, [__MODULE__, config, [name: Module.concat(config.name, HTTP)]]}
      }
    ]

    Supervisor.start_link(children, strategy: :one_for_all)
  end

  @doc "The port the store's server listens on."
  def port(store), do: GenServer.call(Module.concat(store, HTTP), :port)

  @impl true
  def init(%{name: store, http: http}) do
    opts = [
      :binary,
      ip: http.ip,
      active: false,
      reuseaddr: true,
      nodelay: true,
      backlog: 1024,
      packet: :raw,
      # A client that stops reading its answer cannot hold a process.
      send_timeout: 30_000,
      send_timeout_close: true
    ]

    case :gen_tcp.listen(http.port, opts) do
      {:ok, listen} ->
        {:ok, port} = :inet.port(listen)
        state = %{listen: listen, port: port, store: store, http: http, active: :atomics.new(1, [])}
        # Two acceptors, so an accept is always waiting.
        for _ <- 1..2, do: spawn_acceptor(state)
        {:ok, state}

      {:error, reason} ->
        {:stop, {:http_listen, http.ip, http.port, reason}}
    end
  end

  @impl true
  def handle_call(:port, _from, state), do: {:reply, state.port, state}

  @impl true
  def handle_info({:accepted, _acceptor}, state) do
    spawn_acceptor(state)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp spawn_acceptor(state) do
    parent = self()
    sup = Module.concat(state.store, HTTPConnections)
    {:ok, _} = Task.Supervisor.start_child(sup, fn -> accept(parent, state) end)
  end

  # Waits for one connection, asks for the next acceptor, then serves it.
  defp accept(parent, state) do
    case :gen_tcp.accept(state.listen) do
      {:ok, socket} ->
        send(parent, {:accepted, self()})
        serve(socket, state)

      {:error, :closed} ->
        :ok

      {:error, reason} ->
        # Out of file descriptors, say: back off rather than spin.
        Logger.warning("Tms HTTP accept failed: #{inspect(reason)}")
        Process.sleep(100)
        send(parent, {:accepted, self()})
    end
  end

  defp serve(socket, state) do
    if :atomics.add_get(state.active, 1, 1) > state.http.max_clients do
      respond(socket, 503, [{"retry-after", "1"}], "too many connections\n", false)
    else
      loop(socket, state, @idle_timeout, "")
    end
  after
    :atomics.sub(state.active, 1, 1)
    :gen_tcp.close(socket)
  end

  # One request after another on a keep-alive connection; `buffered` holds
  # what the client sent past the last request.
  defp loop(socket, state, wait, buffered) do
    with {:ok, head, buffered} <- read_head(socket, buffered, wait, state.http.request_timeout),
         {:ok, {method, target, version, headers}} <- parse_head(head) do
      keep_alive? = keep_alive?(headers, version)

      case body(socket, headers, state.http, buffered) do
        {:ok, body, buffered} ->
          {path, query} = split_target(target)
          token = state.http.token
          # HEAD is GET without the body (the length stays).
          as = if method == "HEAD", do: "GET", else: method

          {status, resp_headers, resp} =
            Tms.HTTP.handle(state.store, as, path, query, headers, body, token: token)

          {status, resp_headers, resp} = http10_answer({status, resp_headers, resp}, version)
          respond = if method == "HEAD", do: &respond_head/5, else: &respond/5

          # A client gone mid-answer ends the connection, nothing else.
          case respond.(socket, status, resp_headers, resp, keep_alive?) do
            :ok when keep_alive? -> loop(socket, state, @idle_timeout, buffered)
            _closed_or_done -> :ok
          end

        {:error, status, message} ->
          _ = respond(socket, status, [], message, false)
      end
    else
      {:error, :bad_request} -> respond(socket, 400, [], "bad request\n", false)
      {:error, _closed_or_timeout} -> :ok
    end
  end

  # The bytes of one request head, through its blank line, and what came
  # after it. The first byte may take `wait`; the rest of the head is due
  # within `timeout` of it.
  defp read_head(socket, buffered, wait, timeout) do
    # Blank lines before a request line are ignored (RFC 9112, 2.2), also
    # one cut between its CR and LF.
    case skip_blank_lines(buffered) do
      pending when pending in ["", "\r"] ->
        case :gen_tcp.recv(socket, 0, wait) do
          {:ok, data} -> read_head(socket, pending <> data, wait, timeout)
          {:error, reason} -> {:error, reason}
        end

      buffered ->
        deadline = System.monotonic_time(:millisecond) + timeout
        complete_head(socket, buffered, 0, deadline)
    end
  end

  defp skip_blank_lines("\r\n" <> rest), do: skip_blank_lines(rest)
  defp skip_blank_lines("\n" <> rest), do: skip_blank_lines(rest)
  defp skip_blank_lines(buffered), do: buffered

  # A head ends at its first empty line, after CRLF or a bare LF (which the
  # BEAM's parser takes too). Each search starts where the last one could
  # have missed the end, so a head trickled in small pieces costs its size,
  # not its size squared.
  defp complete_head(socket, buffered, from, deadline) do
    scope = {from, byte_size(buffered) - from}

    case :binary.match(buffered, ["\n\r\n", "\n\n"], scope: scope) do
      {at, length} ->
        <<head::binary-size(at + length), rest::binary>> = buffered
        {:ok, head, rest}

      :nomatch when byte_size(buffered) > @max_head_bytes ->
        {:error, :bad_request}

      :nomatch ->
        left = max(deadline - System.monotonic_time(:millisecond), 0)

        case :gen_tcp.recv(socket, 0, left) do
          {:ok, data} -> complete_head(socket, buffered <> data, max(byte_size(buffered) - 2, 0), deadline)
          {:error, reason} -> {:error, reason}
        end
    end
  end

  # The request line and at most @max_headers headers of a whole head.
  defp parse_head(head) do
    case :erlang.decode_packet(:http_bin, head, []) do
      {:ok, {:http_request, method, target, version}, rest} ->
        with {:ok, headers} <- parse_headers(rest, []) do
          {:ok, {to_string(method), target(target), version, headers}}
        end

      _not_a_request ->
        {:error, :bad_request}
    end
  end

  defp parse_headers(_rest, acc) when length(acc) >= @max_headers, do: {:error, :bad_request}

  defp parse_headers(rest, acc) do
    case :erlang.decode_packet(:httph_bin, rest, []) do
      {:ok, {:http_header, _, name, _, value}, rest} ->
        parse_headers(rest, [{String.downcase(to_string(name)), value} | acc])

      {:ok, :http_eoh, _} ->
        {:ok, Enum.reverse(acc)}

      _bad_or_cut ->
        {:error, :bad_request}
    end
  end

  defp target({:abs_path, path}), do: path
  defp target({:absoluteURI, _scheme, _host, _port, path}), do: path
  defp target(_other), do: "/"

  # The body and what the client sent past it.
  defp body(socket, headers, %{max_body_bytes: max, request_timeout: timeout}, buffered) do
    length = List.keyfind(headers, "content-length", 0)
    chunked = List.keyfind(headers, "transfer-encoding", 0)
    # A client that asked (curl does for large bodies) sends the body only
    # once told to go on.
    expects? = match?({_, v} when v in ["100-continue", "100-Continue"], List.keyfind(headers, "expect", 0))

    cond do
      chunked != nil ->
        {:error, 411, "send a Content-Length (chunked bodies are not read)\n"}

      length == nil ->
        {:ok, "", buffered}

      true ->
        case Integer.parse(elem(length, 1)) do
          {n, ""} when n > max ->
            # Read a body up to a few times the limit (so the client sees the
            # answer rather than a reset); past that, answer and close.
            if n <= 4 * max and not expects?, do: _ = read_body(socket, n, buffered, timeout)
            {:error, 413, "the body is #{n} bytes, the limit is #{max}\n"}

          {0, ""} ->
            {:ok, "", buffered}

          {n, ""} when n > 0 ->
            if expects? and buffered == "", do: :gen_tcp.send(socket, "HTTP/1.1 100 Continue\r\n\r\n")
            read_body(socket, n, buffered, timeout)

          _ ->
            {:error, 400, "a bad Content-Length\n"}
        end
    end
  end

  # Reads the rest of an `n`-byte body in chunks, each due within
  # request_timeout (the first) or the time 1 KB/s needs for it: a slow
  # client cannot hold a process, and memory follows what actually arrived.
  defp read_body(_socket, n, buffered, _request_timeout) when byte_size(buffered) >= n do
    <<body::binary-size(n), rest::binary>> = buffered
    {:ok, body, rest}
  end

  defp read_body(socket, n, buffered, request_timeout) do
    with {:ok, body} <- read_chunks(socket, n - byte_size(buffered), request_timeout, [buffered]) do
      {:ok, body, ""}
    end
  end

  defp read_chunks(_socket, 0, _slack, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc))}

  defp read_chunks(socket, left, slack, acc) do
    chunk = min(left, @body_chunk)

    case :gen_tcp.recv(socket, chunk, slack + div(chunk * 1000, @min_bytes_per_second)) do
      {:ok, data} -> read_chunks(socket, left - byte_size(data), 1_000, [data | acc])
      {:error, _} -> {:error, 408, "the body did not arrive in time\n"}
    end
  end

  # HTTP/1.0 has no chunks: a streamed answer is gathered, and one that
  # failed on the way is a 500 (nothing of it was sent yet).
  defp http10_answer({status, headers, {:chunks, stream}}, {1, 0}) do
    chunks = Enum.to_list(stream)

    case List.keyfind(chunks, :abort, 0) do
      {:abort, reason} -> {500, [{"content-type", "text/plain"}], [reason, "\n"]}
      nil -> {status, headers, chunks}
    end
  end

  defp http10_answer(answer, _version), do: answer

  # HTTP/1.1 keeps a connection unless told to close; 1.0 only when asked.
  defp keep_alive?(headers, version) do
    tokens =
      case List.keyfind(headers, "connection", 0) do
        {_, value} -> value |> String.downcase() |> String.split(",", trim: true) |> Enum.map(&String.trim/1)
        nil -> []
      end

    if version == {1, 0}, do: "keep-alive" in tokens, else: "close" not in tokens
  end

  defp split_target(target) do
    case :binary.split(target, "?") do
      [path, query] -> {path, query}
      [path] -> {path, ""}
    end
  end

  defp respond(socket, status, headers, {:chunks, stream}, keep_alive?) do
    head = status_head(status, [{"transfer-encoding", "chunked"} | headers], keep_alive?)

    with :ok <- :gen_tcp.send(socket, head),
         :ok <- send_chunks(socket, stream) do
      :gen_tcp.send(socket, "0\r\n\r\n")
    end
  end

  defp respond(socket, status, headers, body, keep_alive?) do
    body = IO.iodata_to_binary(body)

    # A 204 carries no body, and so no length.
    length = if status == 204, do: [], else: [{"content-length", Integer.to_string(byte_size(body))}]
    :gen_tcp.send(socket, [status_head(status, length ++ headers, keep_alive?), body])
  end

  # The head a GET would send: a streamed answer's says chunked.
  defp respond_head(socket, status, headers, {:chunks, _}, keep_alive?) do
    :gen_tcp.send(socket, status_head(status, [{"transfer-encoding", "chunked"} | headers], keep_alive?))
  end

  defp respond_head(socket, status, headers, body, keep_alive?) do
    length = Integer.to_string(IO.iodata_length(body))
    :gen_tcp.send(socket, status_head(status, [{"content-length", length} | headers], keep_alive?))
  end

  defp status_head(status, headers, keep_alive?) do
    [
      "HTTP/1.1 ",
      Integer.to_string(status),
      " ",
      reason(status),
      if(keep_alive?, do: "", else: "\r\nconnection: close"),
      for({k, v} <- headers, do: ["\r\n", k, ": ", v]),
      "\r\n\r\n"
    ]
  end

  defp send_chunks(socket, stream) do
    Enum.reduce_while(stream, :ok, fn
      {:abort, reason}, :ok ->
        Logger.warning("Tms HTTP answer cut off: #{reason}")
        {:halt, {:error, :aborted}}

      chunk, :ok ->
        send_chunk(socket, chunk)
    end)
  end

  defp send_chunk(socket, chunk) do
    size = IO.iodata_length(chunk)

    if size == 0 do
      {:cont, :ok}
    else
      case :gen_tcp.send(socket, [Integer.to_string(size, 16), "\r\n", chunk, "\r\n"]) do
        :ok -> {:cont, :ok}
        error -> {:halt, error}
      end
    end
  end

  defp reason(200), do: "OK"
  defp reason(204), do: "No Content"
  defp reason(400), do: "Bad Request"
  defp reason(401), do: "Unauthorized"
  defp reason(404), do: "Not Found"
  defp reason(405), do: "Method Not Allowed"
  defp reason(408), do: "Request Timeout"
  defp reason(411), do: "Length Required"
  defp reason(413), do: "Payload Too Large"
  defp reason(500), do: "Internal Server Error"
  defp reason(503), do: "Service Unavailable"
  defp reason(_), do: "Status"
end
