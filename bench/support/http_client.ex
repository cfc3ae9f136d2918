defmodule Tms.Bench.HTTPClient do
  @moduledoc false
  # A minimal HTTP/1.1 keep-alive client over :gen_tcp for the HTTP
  # benchmarks: one connection, POSTs in turn, the status and the time of
  # each. The same client drives every server, so the comparison measures
  # the servers, not :httpc.
  #
  # The socket's user-level buffer is 1 MB: at the default (1,460 bytes) a
  # receive takes at most that much, and reading a 4.3 MB answer took the
  # client 11 ms of receives where the bytes took 3 (a bare :gen_tcp server
  # sending it, median of 15), which every server's latency carried.

  def connect(port) do
    {:ok, socket} =
      :gen_tcp.connect(~c"127.0.0.1", port, [
        :binary,
        active: false,
        nodelay: true,
        packet: :raw,
        buffer: 1_048_576
      ])

    socket
  end

  @doc "POSTs `body` to `path`; the response's status code."
  def post(socket, path, body, content_type) do
    :ok =
      :gen_tcp.send(socket, [
        "POST ",
        path,
        " HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ",
        content_type,
        "\r\ncontent-length: ",
        Integer.to_string(byte_size(body)),
        "\r\n\r\n",
        body
      ])

    read_response(socket, "")
  end

  @doc "GETs `path`; `{status, body}` (bodies by length or chunked)."
  def get(socket, path) do
    :ok = :gen_tcp.send(socket, ["GET ", path, " HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"])
    read_full_response(socket, "")
  end

  defp read_response(socket, acc) do
    case :binary.split(acc, "\r\n\r\n") do
      [head, rest] ->
        <<"HTTP/1.1 ", status::binary-3, _::binary>> = head
        length = content_length(head)
        _ = read_exactly(socket, rest, length)
        String.to_integer(status)

      [_] ->
        {:ok, data} = :gen_tcp.recv(socket, 0, 60_000)
        read_response(socket, acc <> data)
    end
  end

  defp read_full_response(socket, acc) do
    case :binary.split(acc, "\r\n\r\n") do
      [head, rest] ->
        <<"HTTP/1.1 ", status::binary-3, _::binary>> = head

        body =
          if head =~ ~r/\r\ntransfer-encoding:\s*chunked/i,
            do: read_chunks(socket, rest, []),
            else: binary_part(read_exactly(socket, rest, content_length(head)), 0, content_length(head))

        {String.to_integer(status), body}

      [_] ->
        {:ok, data} = :gen_tcp.recv(socket, 0, 60_000)
        read_full_response(socket, acc <> data)
    end
  end

  defp read_chunks(socket, buf, acc) do
    case :binary.split(buf, "\r\n") do
      [size_line, rest] ->
        size = size_line |> String.split(";") |> hd() |> String.to_integer(16)
        rest = read_exactly(socket, rest, size + 2)
        <<chunk::binary-size(size), "\r\n", more::binary>> = rest

        if size == 0,
          do: IO.iodata_to_binary(Enum.reverse(acc)),
          else: read_chunks(socket, more, [chunk | acc])

      [_] ->
        {:ok, data} = :gen_tcp.recv(socket, 0, 60_000)
        read_chunks(socket, buf <> data, acc)
    end
  end

  defp content_length(head) do
    case Regex.run(~r/\r\ncontent-length:\s*(\d+)/i, head) do
      [_, n] -> String.to_integer(n)
      nil -> 0
    end
  end

  defp read_exactly(_socket, got, length) when byte_size(got) >= length, do: got

  defp read_exactly(socket, got, length) do
    {:ok, data} = :gen_tcp.recv(socket, 0, 60_000)
    read_exactly(socket, got <> data, length)
  end
end
