defmodule Tms.Bench.HTTPClient do
  @moduledoc false
  # A minimal HTTP/1.1 keep-alive client over :gen_tcp for the HTTP
  # benchmarks: one connection, POSTs in turn, the status and the time of
  # each. The same client drives every server, so the comparison measures
  # the servers, not :httpc.

  def connect(port) do
    {:ok, socket} =
      :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false, nodelay: true, packet: :raw])

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
